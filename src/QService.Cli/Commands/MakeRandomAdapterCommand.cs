using System.CommandLine;
using QService.Runtime.Adapters;
using QService.Runtime.Scoring;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice make-random-adapter`: writes a random PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors, as
/// PEFT saves them) over a base model folder, e.g. the all-linear r = 16 adapter of the adapter benchmark. Its credits are
/// noise; its cost is real.
/// </summary>
static class MakeRandomAdapterCommand
{
    public static Command Create()
    {
        var baseFolder = new Option<string>("--base") { Description = "the base model folder", Required = true };
        var output = new Option<string>("--output") { Description = "folder for the adapter", Required = true };
        var rank = new Option<int>("--r") { Description = "LoRA rank", DefaultValueFactory = _ => 16 };
        var alpha = new Option<double>("--alpha") { Description = "lora_alpha", DefaultValueFactory = _ => 32 };
        var targets = new Option<string>("--targets")
            { Description = "all-linear, or comma-separated module names (q_proj,v_proj)", DefaultValueFactory = _ => "all-linear" };
        var seed = new Option<long>("--seed") { Description = "random seed", DefaultValueFactory = _ => 1 };
        var cmd = new Command("make-random-adapter", "Write a random PEFT LoRA adapter over a base model, for benchmarks.")
            { baseFolder, output, rank, alpha, targets, seed };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            string basePath = Path.GetFullPath(r.GetValue(baseFolder)!);
            using var model = CausalLanguageModel.Load(basePath, new ModelLoadOptions("cpu"));
            string dir = r.GetValue(output)!;
            PeftAdapterWriter.WriteRandom(model, dir, r.GetValue(rank), r.GetValue(alpha), r.GetValue(targets)!, r.GetValue(seed),
                baseModelNameOrPath: basePath);
            using var adapter = CausalLanguageModel.LoadAdapter(model, dir);
            Console.WriteLine($"wrote {dir}: {adapter.Adapter!.Describe()}");
            return 0;
        }));
        return cmd;
    }
}
