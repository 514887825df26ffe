using System.CommandLine;
using QService.Cli.Commands;

// `qservice`: check checkpoints by hand (logprobs, tokenize), talk to a running server (score, bench)
// and measure the runtime (bench-forward).
var root = new RootCommand("QService command-line tool: token log-probabilities, tokenization and benchmarks for HuggingFace causal LMs.")
{
    LogprobsCommand.Create(),
    TokenizeCommand.Create(),
    BenchForwardCommand.Create(),
    ScoreCommand.Create(),
    BenchCommand.Create(),
    BenchCacheCommand.Create(),
    BenchPoliciesCommand.Create(),
    TrainDemoCommand.Create(),
    DemoReportCommand.Create(),
    MakeRandomPairCommand.Create(),
    MakeRandomAdapterCommand.Create(),
    DecodeCommand.Create(),
    DecodingReportCommand.Create(),
    BenchSampleCommand.Create(),
    SoakCommand.Create(),
    BenchRewardsCommand.Create(),
    QService.Cli.Commands.Eval.EvalCommand.Create(),
};
return root.Parse(args).Invoke();
