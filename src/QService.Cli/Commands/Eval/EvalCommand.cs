using System.CommandLine;
using QService.Client;
using QService.Client.Evaluation;

namespace QService.Cli.Commands.Eval;

/// <summary>
/// `qservice eval`: the pair as a reward model on a preference dataset (RewardBench's offline evaluation of DPO models):
/// both responses of every pair scored on one or more running servers, per-pair results written as they come, then the
/// summary (accuracy with its Wilson interval, margins, subsets, length buckets), optionally as JSON and as an HTML report.
/// `qservice eval make-data` writes datasets: the demo language's labelled pairs, or random token ids for benchmarks.
/// </summary>
static class EvalCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "the preference dataset: .jsonl (one JSON object a line) or .parquet", Required = true };
        var output = new Option<string>("--output") { Description = "per-pair results, written as they come: .jsonl or .parquet", Required = true };
        var servers = new Option<string>("--server")
            { Description = "server address, or several separated by commas (work is spread over them)", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var resume = new Option<bool>("--resume") { Description = "continue a stopped run: skip the rows the output already holds" };
        var html = new Option<string?>("--html") { Description = "also write a self-contained HTML report to this file" };
        var json = new Option<bool>("--json") { Description = "print the summary as one JSON object" };
        var prompt = new Option<string>("--prompt-column") { DefaultValueFactory = _ => "prompt", Description = "column of the prompt" };
        var chosen = new Option<string>("--chosen-column") { DefaultValueFactory = _ => "chosen", Description = "column of the preferred response" };
        var rejected = new Option<string>("--rejected-column") { DefaultValueFactory = _ => "rejected", Description = "column of the other response" };
        var subset = new Option<string>("--subset-column") { DefaultValueFactory = _ => "subset", Description = "optional column of a subset name" };
        var noEos = new Option<bool>("--no-eos") { Description = "do not score the end-of-sequence token (default: responses are finished, EOS scored)" };
        var step = new Option<string?>("--step-delimiter") { Description = "also score steps ending at this text (e.g. \"\\n\") and report step accuracy" };
        var credits = new Option<bool>("--credits") { Description = "write every token's credit to the output too" };
        var beta = new Option<float?>("--beta") { Description = "override the server's beta" };
        var policy = new Option<string?>("--policy") { Description = "the served policy to evaluate (default: the server's first)" };
        var batch = new Option<int>("--pairs-per-request") { DefaultValueFactory = _ => 16, Description = "pairs in one Score request" };
        var inFlight = new Option<int>("--requests-per-server") { DefaultValueFactory = _ => 4, Description = "requests in flight on each server" };
        var shared = new Option<bool>("--shared-batches")
        {
            Description = "let the server batch these requests with other work and reuse prefixes other requests cached (default: each request " +
                "alone, so reruns and --resume give the same bits)",
        };
        var limit = new Option<long?>("--limit") { Description = "evaluate the first N rows only" };
        var check = new Option<bool>("--check-only")
            { Description = "read and check every row without scoring (no server, no output): rows, and the bad ones a reader can see" };
        var strict = new Option<bool>("--fail-on-bad-rows") { Description = "exit 2 when any row is bad (they are still all scored and listed)" };
        var cmd = new Command("eval", "Evaluate the pair as a reward model on a preference dataset (JSONL or Parquet, TRL's formats): accuracy, " +
            "margins, per subset and length; per-pair output; --resume; several servers; an HTML report.")
            {
                data, output, servers, resume, html, json, prompt, chosen, rejected, subset, noEos, step, credits, beta, policy, batch, inFlight, shared,
                limit, strict, check,
            };
        cmd.Subcommands.Add(EvalDataCommand.Create());
        cmd.SetAction(r => CliErrors.Run(() => new EvalRun(new EvalSettings(
            r.GetValue(data)!, r.GetValue(output)!, r.GetValue(servers)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            r.GetValue(resume), r.GetValue(html), r.GetValue(json),
            new PreferenceColumns(r.GetValue(prompt)!, r.GetValue(chosen)!, r.GetValue(rejected)!, r.GetValue(subset)!), !r.GetValue(noEos),
            new EvaluationOptions
            {
                PairsPerRequest = r.GetValue(batch), RequestsPerServer = r.GetValue(inFlight), Beta = r.GetValue(beta),
                StepDelimiter = r.GetValue(step), IncludeCredits = r.GetValue(credits), Policy = r.GetValue(policy),
                Reproducible = !r.GetValue(shared),
            }, r.GetValue(limit), r.GetValue(strict), r.GetValue(check))).Execute()));
        return cmd;
    }
}

sealed record EvalSettings(string Data, string Output, string[] Servers, bool Resume, string? Html, bool Json, PreferenceColumns Columns,
    bool AppendEos, EvaluationOptions Options, long? Limit, bool FailOnBadRows, bool CheckOnly);
