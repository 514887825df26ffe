using System.CommandLine;
using System.Diagnostics;
using Grpc.Core;
using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench`: drives a running server with N concurrent callers for a fixed time (each caller sends
/// one item at a time and waits for it) and prints scored tokens per second and latency percentiles, for
/// each concurrency level in one run, with the throughput ratio to the first level. With
/// `--forward-baseline` it then times the bare forward pass on the same shape (`bench-forward --batch
/// CALLERS --length PROMPT+RESPONSE` in a child process, while the server is idle) and prints the service's
/// throughput at the highest level as a fraction of it: what batching, gRPC and the queue cost.
/// </summary>
static class BenchCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "server address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var concurrency = new Option<string>("--concurrency")
            { Description = "comma-separated caller counts to run one after the other", DefaultValueFactory = _ => "1,32" };
        var seconds = new Option<double>("--seconds") { Description = "duration of each level", DefaultValueFactory = _ => 20 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "prompt tokens per item", DefaultValueFactory = _ => 64 };
        var responseTokens = new Option<int>("--response-tokens") { Description = "response tokens per item", DefaultValueFactory = _ => 64 };
        var baseline = new Option<bool>("--forward-baseline")
            { Description = "also time bench-forward on the same batch shape and print the service's share of it" };
        var cmd = new Command("bench", "Load-test a running QService and report throughput and latency.")
            { server, concurrency, seconds, promptTokens, responseTokens, baseline };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(concurrency)!, r.GetValue(seconds),
            r.GetValue(promptTokens), r.GetValue(responseTokens),
            r.GetValue(baseline)).GetAwaiter().GetResult()));
        return cmd;
    }

    static async Task<int> Execute(string address, string levelsText, double seconds, int promptTokens, int responseTokens, bool forwardBaseline)
    {
        int[] levels = CliErrors.ParseIds(levelsText);
        if (levels.Length == 0 || levels.Any(l => l < 1) || seconds <= 0 || promptTokens < 1 || responseTokens < 1)
            throw new ArgumentException("--concurrency levels >= 1, --seconds > 0, token counts >= 1");
        using var channel = new QServiceChannel(address);
        var info = await channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        Console.WriteLine($"server {address}: {info.PolicyArchitecture} pair ({info.PolicyModel} / {info.ReferenceModel}), {info.Device}, {info.Dtype}");
        Console.WriteLine($"items: {promptTokens} prompt + {responseTokens} response tokens (random ids); {seconds:F0} s per level");
        Console.WriteLine($"{"callers",8} {"requests",9} {"tokens/s",10} {"p50 ms",9} {"p90 ms",9} {"p99 ms",9} {"errors",7}");
        double? first = null, last = null;
        foreach (int callers in levels)
        {
            var level = RunLevel(channel, info.VocabSize, callers, seconds, promptTokens, responseTokens);
            using (var progress = new TerminalProgress($"{callers} callers, seconds", (int)Math.Ceiling(seconds)))
                for (var clock = System.Diagnostics.Stopwatch.StartNew(); !level.IsCompleted; await Task.WhenAny(level, Task.Delay(250)))
                    progress.Show((int)clock.Elapsed.TotalSeconds);
            var (requests, errors, tokensPerSecond, latencies) = await level;
            first ??= tokensPerSecond;
            last = tokensPerSecond;
            Console.WriteLine($"{callers,8} {requests,9} {tokensPerSecond,10:F0} {Percentile(latencies, 0.5),9:F1} {Percentile(latencies, 0.9),9:F1} " +
                $"{Percentile(latencies, 0.99),9:F1} {errors,7}" +
                (callers != levels[0] ? $"   x{tokensPerSecond / first.Value:F2} vs {levels[0]} caller(s)" : ""));
        }
        Console.WriteLine("tokens/s counts prompt + response tokens scored by both models per second.");
        if (forwardBaseline)
        {
            int batch = levels[^1], length = promptTokens + responseTokens;
            double forward = ForwardPairTokensPerSecond(batch, length, info.Dtype);
            Console.WriteLine($"bench-forward --batch {batch} --length {length} --dtype {info.Dtype} (random 134M Llama, same run): " +
                $"{forward:F0} pair tokens/s; " +
                $"the service at {batch} callers reached {last!.Value / forward:P1} of it");
        }
        return 0;
    }

    static async Task<(int Requests, int Errors, double TokensPerSecond, List<double> LatenciesMs)> RunLevel(
        QServiceChannel channel, int vocab, int callers, double seconds, int promptTokens, int responseTokens)
    {
        var latencies = new List<double>();
        int requests = 0, errors = 0;
        var stop = DateTime.UtcNow.AddSeconds(seconds);
        var total = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, callers).Select(async caller =>
        {
            var rng = new Random(caller);
            while (DateTime.UtcNow < stop)
            {
                var item = new ScoreItem { Id = $"{caller}" };
                item.PromptTokenIds.Add(Enumerable.Range(0, promptTokens).Select(_ => rng.Next(vocab)));
                item.ResponseTokenIds.Add(Enumerable.Range(0, responseTokens).Select(_ => rng.Next(vocab)));
                var request = new ScoreRequest { Items = { item } };
                var sw = Stopwatch.StartNew();
                try
                {
                    await channel.Scorer.ScoreAsync(request, deadline: DateTime.UtcNow.AddMinutes(5));
                    lock (latencies) { latencies.Add(sw.Elapsed.TotalMilliseconds); requests++; }
                }
                catch (RpcException) { Interlocked.Increment(ref errors); }
            }
        }).ToArray();
        await Task.WhenAll(tasks);
        double elapsed = total.Elapsed.TotalSeconds;
        return (requests, errors, requests * (double)(promptTokens + responseTokens) / elapsed, latencies);
    }

    /// <summary>Pair tokens/s of the bare forward pass, from `qservice bench-forward --json` in a child process.</summary>
    static double ForwardPairTokensPerSecond(int batch, int length, string dtype)
    {
        string json = SelfCommand.Run(["bench-forward", "--batch", $"{batch}", "--length", $"{length}", "--dtype", dtype, "--json"]);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("shapes")[0].GetProperty("pair_tokens_per_second").GetDouble();
    }

    static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(p * sorted.Length))];
    }
}
