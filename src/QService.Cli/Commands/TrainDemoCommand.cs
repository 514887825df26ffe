using System.CommandLine;
using QService.Demo;

namespace QService.Cli.Commands;

/// <summary>`qservice train-demo`: reproduces the committed demo pair (models/demo) from scratch.</summary>
static class TrainDemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output") { Description = "folder for reference/ and policy/", DefaultValueFactory = _ => "models/demo" };
        var loss = new Option<string>("--loss") { Description = "preference loss: dpo or nca", DefaultValueFactory = _ => "dpo" };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice", DefaultValueFactory = _ => 1 };
        var beta = new Option<double>("--beta") { Description = "beta of the implicit reward", DefaultValueFactory = _ => 0.1 };
        var tiny = new Option<bool>("--tiny") { Description = "a few steps of everything (seconds), to check the pipeline" };
        var cmd = new Command("train-demo", "Train the demo pair: BPE tokenizer, SFT reference, then a DPO (or NCA) policy.")
            { output, loss, seed, beta, tiny };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            string lossName = r.GetValue(loss)!;
            if (lossName is not ("dpo" or "nca")) throw new ArgumentException("--loss must be dpo or nca");
            var options = new DemoTrainingOptions { Loss = lossName, Seed = r.GetValue(seed), Beta = r.GetValue(beta) };
            if (r.GetValue(tiny)) options = DemoTrainingOptions.Tiny(options);
            new DemoTrainer(options, Console.Out).Run(r.GetValue(output)!);
            return 0;
        }));
        return cmd;
    }
}
