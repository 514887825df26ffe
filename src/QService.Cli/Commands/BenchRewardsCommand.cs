using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench-rewards`: what OpenRLHF's /get_reward costs over gRPC Score on the same items, in one run. N concurrent callers
/// send one item a request, as OpenRLHF's agents do, for a fixed time; the two ways alternate for a number of rounds (so that a
/// machine loaded by others weighs on both alike), and the pair tokens/s of /get_reward is printed as a share of Score's.
/// The items are text of the demo language (a fixed set, the same for both ways); each way counts the tokens it scored as the
/// server reports them (Score: prompt_tokens + token_ids; /get_reward: extra_logs qservice_prompt_tokens + qservice_tokens_scored).
/// </summary>
static class BenchRewardsCommand
{
    static readonly string[] Things = ["battery", "screen", "delivery", "camera", "price", "sound", "case"];
    static readonly string[] Words = ["long", "excellent", "awful", "good", "bad", "great", "poor", "fine"];

    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "gRPC address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var http = new Option<string>("--http") { Description = "the JSON port's base URL", DefaultValueFactory = _ => "http://127.0.0.1:50052" };
        var callers = new Option<int>("--callers") { Description = "concurrent single-item callers", DefaultValueFactory = _ => 32 };
        var seconds = new Option<double>("--seconds") { Description = "duration of each way in each round", DefaultValueFactory = _ => 15 };
        var rounds = new Option<int>("--rounds") { Description = "rounds, each running Score then /get_reward", DefaultValueFactory = _ => 2 };
        var sentences = new Option<int>("--sentences") { Description = "sentences per response (about 5 tokens each)", DefaultValueFactory = _ => 8 };
        var cmd = new Command("bench-rewards", "Measure /get_reward against gRPC Score on the same items, at N concurrent callers.")
            { server, http, callers, seconds, rounds, sentences };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(http)!.TrimEnd('/'), r.GetValue(callers),
            r.GetValue(seconds), r.GetValue(rounds), r.GetValue(sentences)).GetAwaiter().GetResult()));
        return cmd;
    }

    static async Task<int> Execute(string address, string http, int callers, double seconds, int rounds, int sentences)
    {
        if (callers < 1 || seconds <= 0 || rounds < 1 || sentences < 1)
            throw new ArgumentException("--callers, --rounds, --sentences >= 1 and --seconds > 0");
        using var channel = new QServiceChannel(address);
        // Kept-alive connections, one per caller.
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = callers })
            { Timeout = TimeSpan.FromMinutes(3) };
        var info = await channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        var items = Items(sentences);
        Console.WriteLine($"server {address} and {http}: {info.PolicyArchitecture} pair ({info.PolicyModel} / {info.ReferenceModel}), {info.Device}");
        Console.WriteLine($"{callers} callers, one item a request, {items.Length} fixed items of {sentences} sentences; " +
            $"{rounds} rounds of {seconds:F0} s a way");
        async Task<int> Score((string Prompt, string Response) item)
        {
            var r = await channel.Scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = item.Prompt, Response = item.Response } } },
                deadline: DateTime.UtcNow.AddMinutes(3));
            return r.Results[0].PromptTokens + r.Results[0].TokenIds.Count;
        }
        async Task<int> GetReward((string Prompt, string Response) item)
        {
            using var response = await client.PostAsJsonAsync($"{http}/get_reward",
                new { query = new[] { item.Prompt + item.Response }, prompts = new[] { item.Prompt }, labels = new string?[] { null } });
            response.EnsureSuccessStatusCode();
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var logs = doc.RootElement.GetProperty("extra_logs");
            return (int)(logs.GetProperty("qservice_prompt_tokens")[0].GetDouble() + logs.GetProperty("qservice_tokens_scored")[0].GetDouble());
        }
        // Warm-up: connections open, code paths compiled, before anything is timed.
        await RunAsync(items, callers, 2, Score);
        await RunAsync(items, callers, 2, GetReward);
        Console.WriteLine($"{"round",6} {"way",12} {"requests",9} {"tokens/s",10} {"p50 ms",8} {"p99 ms",8} {"errors",7}");
        var totals = new Dictionary<string, (double Tokens, double Seconds)> { ["Score"] = (0, 0), ["/get_reward"] = (0, 0) };
        for (int round = 1; round <= rounds; round++)
            foreach (var (way, call) in new[] { ("Score", (Func<(string, string), Task<int>>)Score), ("/get_reward", GetReward) })
            {
                var level = await RunAsync(items, callers, seconds, call);
                totals[way] = (totals[way].Tokens + level.Tokens, totals[way].Seconds + level.Seconds);
                Console.WriteLine($"{round,6} {way,12} {level.Latencies.Count,9} {level.Tokens / level.Seconds,10:F0} " +
                    $"{Percentile(level.Latencies, 0.5),8:F1} {Percentile(level.Latencies, 0.99),8:F1} {level.Errors,7}");
            }
        double score = totals["Score"].Tokens / totals["Score"].Seconds, reward = totals["/get_reward"].Tokens / totals["/get_reward"].Seconds;
        Console.WriteLine($"all rounds: Score {score:F0} pair tokens/s, /get_reward {reward:F0}: /get_reward reached {reward / score:P1} of Score");
        return 0;
    }

    /// <summary>A fixed set of reviews: prompt "Review of the THING:", response some sentences of the demo language.</summary>
    static (string Prompt, string Response)[] Items(int sentences)
    {
        var rng = new Random(5);
        string Sentence() => $" The {Things[rng.Next(Things.Length)]} is {Words[rng.Next(Words.Length)]}.";
        return [.. Enumerable.Range(0, 256).Select(_ => ($"Review of the {Things[rng.Next(Things.Length)]}:",
            string.Concat(Enumerable.Range(0, sentences).Select(_ => Sentence()))))];
    }

    static async Task<(double Tokens, double Seconds, int Errors, List<double> Latencies)> RunAsync((string, string)[] items, int callers,
        double seconds, Func<(string, string), Task<int>> call)
    {
        var latencies = new List<double>();
        long tokens = 0;
        int errors = 0;
        var stop = DateTime.UtcNow.AddSeconds(seconds);
        var total = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async caller =>
        {
            for (int next = caller; DateTime.UtcNow < stop; next += callers)
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    int scored = await call(items[next % items.Length]);
                    Interlocked.Add(ref tokens, scored);
                    lock (latencies) latencies.Add(sw.Elapsed.TotalMilliseconds);
                }
                catch (Exception e) when (e is Grpc.Core.RpcException or HttpRequestException) { Interlocked.Increment(ref errors); }
            }
        }));
        return (tokens, total.Elapsed.TotalSeconds, errors, latencies);
    }

    static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(p * sorted.Length))];
    }
}
