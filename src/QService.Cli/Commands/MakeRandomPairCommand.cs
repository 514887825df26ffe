using System.CommandLine;
using QService.Runtime.Scoring;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice make-random-pair`: writes a randomly initialised Llama policy/reference pair in HuggingFace layout,
/// e.g. the ~100M-parameter pair of the service benchmark. Its credits are noise; its cost is real.
/// </summary>
static class MakeRandomPairCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output") { Description = "folder for policy/ and reference/", Required = true };
        var hidden = new Option<int>("--hidden") { Description = "hidden size", DefaultValueFactory = _ => 768 };
        var layers = new Option<int>("--layers") { Description = "decoder layers", DefaultValueFactory = _ => 12 };
        var vocab = new Option<int>("--vocab") { Description = "vocabulary size", DefaultValueFactory = _ => 32000 };
        var cmd = new Command("make-random-pair", "Write a random Llama pair (reference seed 1, policy seed 2) for benchmarks.")
            { output, hidden, layers, vocab };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var config = BenchForwardCommand.BenchConfig() with
            {
                HiddenSize = r.GetValue(hidden), NumHiddenLayers = r.GetValue(layers), VocabSize = r.GetValue(vocab),
                NumAttentionHeads = r.GetValue(hidden) / 64, NumKeyValueHeads = r.GetValue(hidden) / 64, IntermediateSize = r.GetValue(hidden) * 8 / 3,
            };
            foreach (var (role, seed) in new[] { ("reference", 1), ("policy", 2) })
            {
                using var model = CausalLanguageModel.CreateRandom(config, seed, new ModelLoadOptions("cpu"), role);
                string dir = Path.Combine(r.GetValue(output)!, role);
                model.SaveAsHuggingFace(dir);
                Console.WriteLine($"wrote {dir} ({model.ParameterCount:N0} parameters)");
            }
            return 0;
        }));
        return cmd;
    }
}
