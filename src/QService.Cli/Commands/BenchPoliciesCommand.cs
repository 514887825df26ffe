using System.CommandLine;
using System.Diagnostics;
using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench-policies`: what scoring the same items under several policies in one request saves, against a running
/// server that serves them. The same items (random ids, fresh each repeat) are scored as one request naming every policy,
/// and as one request per policy, one after the other; each way is timed and its forward tokens counted from the server's
/// qservice_forward_tokens_total, and the first is printed as a share of the second. Run it with the server's prefix cache
/// off to see the requests' own saving: with the cache on, the per-policy requests reuse the reference's cached prefixes.
/// </summary>
static class BenchPoliciesCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "server address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var metrics = new Option<string>("--metrics") { Description = "the server's metrics URL", DefaultValueFactory = _ => "http://127.0.0.1:8080/metrics" };
        var items = new Option<int>("--items") { Description = "items per request", DefaultValueFactory = _ => 16 };
        var repeats = new Option<int>("--repeats") { Description = "repeats of each way (alternating)", DefaultValueFactory = _ => 5 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "prompt tokens per item", DefaultValueFactory = _ => 64 };
        var responseTokens = new Option<int>("--response-tokens") { Description = "response tokens per item", DefaultValueFactory = _ => 64 };
        var cmd = new Command("bench-policies", "Measure one request under several policies against one request per policy.")
            { server, metrics, items, repeats, promptTokens, responseTokens };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(metrics)!, r.GetValue(items), r.GetValue(repeats),
            r.GetValue(promptTokens), r.GetValue(responseTokens)).GetAwaiter().GetResult()));
        return cmd;
    }

    static async Task<int> Execute(string address, string metricsUrl, int items, int repeats, int promptTokens, int responseTokens)
    {
        if (items < 1 || repeats < 1 || promptTokens < 1 || responseTokens < 1) throw new ArgumentException("--items, --repeats and token counts >= 1");
        using var channel = new QServiceChannel(address);
        using var http = new HttpClient();
        var info = await channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        string[] policies = [.. info.Policies.Select(p => p.Name)];
        if (policies.Length < 2)
            throw new ArgumentException($"the server at {address} serves {policies.Length} policy; start it with several (--policy NAME=DIR)");
        Console.WriteLine($"server {address}: {policies.Length} policies ({string.Join(", ", policies)}) against {info.ReferenceModel}, {info.Device}");
        Console.WriteLine($"{items} items of {promptTokens} + {responseTokens} tokens (random ids, fresh each repeat), {repeats} repeats of each way");

        var rng = new Random(11);
        ScoreItem[] Items() => [.. Enumerable.Range(0, items).Select(i => new ScoreItem
        {
            Id = $"{i}",
            PromptTokenIds = { Enumerable.Range(0, promptTokens).Select(_ => rng.Next(info.VocabSize)) },
            ResponseTokenIds = { Enumerable.Range(0, responseTokens).Select(_ => rng.Next(info.VocabSize)) },
        })];
        async Task<double> ForwardTokens() =>
            MetricsText.Parse(await http.GetStringAsync(metricsUrl)).GetValueOrDefault("qservice_forward_tokens_total");
        async Task<(double Seconds, double Tokens)> Measure(Func<ScoreItem[], Task> score)
        {
            var batch = Items();
            double before = await ForwardTokens();
            var sw = Stopwatch.StartNew();
            await score(batch);
            double seconds = sw.Elapsed.TotalSeconds;
            return (seconds, await ForwardTokens() - before);
        }
        Task OneRequest(ScoreItem[] batch) => channel.Scorer.ScoreAsync(new ScoreRequest { Items = { batch }, Policies = { policies } }).ResponseAsync;
        async Task PerPolicy(ScoreItem[] batch)
        {
            foreach (string policy in policies)
                await channel.Scorer.ScoreAsync(new ScoreRequest { Items = { batch.Select(i => { var c = i.Clone(); c.Policy = policy; return c; }) } });
        }

        await Measure(OneRequest); // warm-up
        double oneSeconds = 0, oneTokens = 0, perSeconds = 0, perTokens = 0;
        for (int r = 0; r < repeats; r++)
        {
            var one = await Measure(OneRequest);
            var per = await Measure(PerPolicy);
            (oneSeconds, oneTokens) = (oneSeconds + one.Seconds, oneTokens + one.Tokens);
            (perSeconds, perTokens) = (perSeconds + per.Seconds, perTokens + per.Tokens);
        }
        Console.WriteLine("| way | seconds per repeat | forward tokens per repeat |");
        Console.WriteLine("| --- | ---: | ---: |");
        Console.WriteLine($"| one request, {policies.Length} policies | {oneSeconds / repeats:F3} | {oneTokens / repeats:F0} |");
        Console.WriteLine($"| {policies.Length} requests, one policy each | {perSeconds / repeats:F3} | {perTokens / repeats:F0} |");
        Console.WriteLine($"| ratio | **{oneSeconds / perSeconds:F2}x** | **{oneTokens / perTokens:F2}x** |");
        return 0;
    }
}
