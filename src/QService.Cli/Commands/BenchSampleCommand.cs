using System.CommandLine;
using System.Diagnostics;
using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench-sample`: what continuous batching buys Sample callers, against a running server, in one run:
/// concurrent against one-at-a-time calls, the cost of a decode step after a short and a long cached prefix,
/// and scoring latency while samplers run against idle.
/// </summary>
static class BenchSampleCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "server address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var callers = new Option<int>("--callers") { Description = "concurrent Sample calls", DefaultValueFactory = _ => 16 };
        var n = new Option<int>("--n") { Description = "samples per call", DefaultValueFactory = _ => 4 };
        var newTokens = new Option<int>("--new-tokens") { Description = "tokens per sample", DefaultValueFactory = _ => 64 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "random prompt tokens per call", DefaultValueFactory = _ => 32 };
        var cmd = new Command("bench-sample",
            "Measure Sample: concurrent vs one-at-a-time throughput, decode step cost vs prefix length, scoring latency under samplers.")
            { server, callers, n, newTokens, promptTokens };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(callers), r.GetValue(n), r.GetValue(newTokens), r.GetValue(promptTokens))
            .GetAwaiter().GetResult()));
        return cmd;
    }

    static async Task<int> Execute(string address, int callers, int n, int newTokens, int promptTokens)
    {
        using var channel = new QServiceChannel(address);
        var scorer = channel.Scorer;
        var info = await scorer.GetModelInfoAsync(new GetModelInfoRequest());
        var random = new Random(1);
        int[] Ids(int count) => [.. Enumerable.Range(0, count).Select(_ => random.Next(3, info.VocabSize))];
        async Task<int> Sample(int[] prompt, int samples, int tokens, CancellationToken cancellation = default)
        {
            var item = new ScoreItem();
            item.PromptTokenIds.Add(prompt);
            var reply = await scorer.SampleAsync(new SampleRequest { Item = item, N = samples, MaxNewTokens = tokens, Seed = 1 },
                cancellationToken: cancellation);
            return reply.Samples.Sum(s => s.Scores.TokenIds.Count);
        }
        Console.WriteLine($"{info.PolicyModel} / {info.ReferenceModel} ({info.PolicyArchitecture}, vocab {info.VocabSize}, {info.Dtype} on {info.Device})");
        await Sample(Ids(promptTokens), n, 4); // warm-up

        // 1. The same calls one at a time, then all at once.
        var prompts = Enumerable.Range(0, callers).Select(_ => Ids(promptTokens)).ToList();
        int sequentialCalls = Math.Min(4, callers);
        var sw = Stopwatch.StartNew();
        long sequentialTokens = 0;
        foreach (var prompt in prompts.Take(sequentialCalls)) sequentialTokens += await Sample(prompt, n, newTokens);
        double sequential = sequentialTokens / sw.Elapsed.TotalSeconds;
        sw.Restart();
        long concurrentTokens = (await Task.WhenAll(prompts.Select(p => Sample(p, n, newTokens)))).Sum();
        double concurrent = concurrentTokens / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"throughput, n={n}, {newTokens} new tokens per sample: one call at a time {sequential:F1} tokens/s ({sequentialCalls} calls); "
            + $"{callers} concurrent calls {concurrent:F1} tokens/s: {concurrent / sequential:F2}x");

        // 2. A decode step after a cached prefix of 16 and of 256 tokens: (65 new tokens − 1 new token) / 64.
        async Task<double> StepSeconds(int prefixLength)
        {
            var prompt = Ids(prefixLength);
            await Sample(prompt, 1, 1); // caches the prefix
            var times = new List<double>();
            for (int repeat = 0; repeat < 3; repeat++)
            {
                var one = Stopwatch.StartNew();
                await Sample(prompt, 1, 1);
                double first = one.Elapsed.TotalSeconds;
                var many = Stopwatch.StartNew();
                int generated = await Sample(prompt, 1, 65);
                times.Add((many.Elapsed.TotalSeconds - first) / Math.Max(1, generated - 1));
            }
            return times.Order().ElementAt(1);
        }
        double shortStep = await StepSeconds(16), longStep = await StepSeconds(256);
        Console.WriteLine($"decode step (n=1): prefix 16 {shortStep * 1000:F1} ms, prefix 256 {longStep * 1000:F1} ms: {longStep / shortStep:F2}x");

        // 3. Scoring latency (p50 of 20 one-item calls, fresh tokens each) idle, then while the samplers run.
        async Task<double> ScoreP50()
        {
            var latencies = new List<double>();
            for (int i = 0; i < 20; i++)
            {
                var item = new ScoreItem();
                item.PromptTokenIds.Add(Ids(32));
                item.ResponseTokenIds.Add(Ids(32));
                var call = Stopwatch.StartNew();
                await scorer.ScoreAsync(new ScoreRequest { Items = { item } });
                latencies.Add(call.Elapsed.TotalMilliseconds);
            }
            return latencies.Order().ElementAt(latencies.Count / 2);
        }
        double idle = await ScoreP50();
        using var stop = new CancellationTokenSource();
        var samplers = prompts.Select(async p =>
        {
            while (!stop.IsCancellationRequested)
                try { await Sample(p, n, newTokens, stop.Token); }
                catch (Grpc.Core.RpcException) when (stop.IsCancellationRequested) { }
        }).ToList();
        await Task.Delay(2000); // let the decoder fill up
        double busy = await ScoreP50();
        stop.Cancel();
        await Task.WhenAll(samplers);
        Console.WriteLine($"scoring p50 (32 + 32 tokens): idle {idle:F1} ms, with {callers} samplers running {busy:F1} ms: {busy / idle:F2}x");
        return 0;
    }
}
