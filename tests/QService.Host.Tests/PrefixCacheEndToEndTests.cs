using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// The prefix cache over real sockets on the HuggingFace reference pair: decoders growing and forking their
/// responses concurrently get exactly what a server without the cache gives, also under a budget so small
/// that it evicts all the time; prefixes scored in random order match transformers; the metrics move.
/// </summary>
public class PrefixCacheEndToEndTests
{
    static Task<ServerProcess> Start(params string[] extra) =>
        ServerProcess.StartServingAsync([
            "--policy", PairServer.PolicyPath, "--reference", PairServer.ReferencePath, "--beta", "0.1", "--threads", "1",
            "--Limits:MaxTokensPerRequest=8000", "--max-queue-delay-ms", "5", .. extra]);

    /// <summary>16 clients, each growing its response a few tokens per call and now and then forking from an earlier point; several share a prompt.</summary>
    static List<ScoreItem>[] Workload(int seed)
    {
        var rng = new Random(seed);
        int[][] prompts = [.. Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, 8 + rng.Next(30)).Select(_ => rng.Next(3, 320)).ToArray())];
        return [.. Enumerable.Range(0, 16).Select(client =>
        {
            int[] prompt = prompts[client % prompts.Length];
            var response = new List<int>();
            var calls = new List<ScoreItem>();
            for (int step = 0; step < 10; step++)
            {
                if (response.Count > 4 && rng.Next(4) == 0) response = response[..rng.Next(1, response.Count)]; // fork from an earlier point
                response.AddRange(Enumerable.Range(0, 1 + rng.Next(8)).Select(_ => rng.Next(3, 320)));
                if (prompt.Length + response.Count > 120) response = response[..(120 - prompt.Length)];
                calls.Add(new ScoreItem { Id = $"{client}.{step}", PromptTokenIds = { prompt }, ResponseTokenIds = { response } });
            }
            return calls;
        })];
    }

    /// <summary>Runs every client's calls in order, the clients concurrently, and returns the results by id.</summary>
    static async Task<Dictionary<string, ScoredItem>> Run(ServerProcess server, List<ScoreItem>[] clients)
    {
        var results = new Dictionary<string, ScoredItem>();
        await Task.WhenAll(clients.Select(async calls =>
        {
            foreach (var call in calls)
            {
                var reply = await server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { call } });
                lock (results) results[call.Id] = reply.Results[0];
            }
        }));
        return results;
    }

    static void AssertSame(ScoredItem expected, ScoredItem actual, string what)
    {
        Assert.Equal(expected.TokenIds, actual.TokenIds);
        foreach (var (e, a, field) in new[]
        {
            (expected.PolicyLogprobs, actual.PolicyLogprobs, "policy"), (expected.ReferenceLogprobs, actual.ReferenceLogprobs, "reference"),
            (expected.Credits, actual.Credits, "credits"), (expected.QValues, actual.QValues, "q_values"),
        })
        {
            Assert.Equal(e.Count, a.Count);
            for (int t = 0; t < e.Count; t++)
                Assert.True(Math.Abs(e[t] - a[t]) <= 1e-5, $"{what}: {field}[{t}] {a[t]} vs {e[t]} without the cache");
        }
        Assert.True(Math.Abs(expected.Reward - actual.Reward) <= 1e-5, $"{what}: reward {actual.Reward} vs {expected.Reward}");
    }

    [Fact]
    public async Task GrowingAndForkingDecoders_GetWhatAServerWithoutTheCacheGives_EvenWhenItEvictsAllTheTime()
    {
        var clients = Workload(seed: 11);
        await using var off = await Start("--PrefixCache:Enabled=false");
        var expected = await Run(off, clients);
        await using var on = await Start();
        // 4 KB per block per model for this pair: room for 3 blocks of each model.
        await using var tiny = await Start("--PrefixCache:MaxBytes=24576");
        var cached = await Run(on, clients);
        var evicting = await Run(tiny, clients);
        foreach (var (id, item) in expected)
        {
            AssertSame(item, cached[id], $"call {id}");
            AssertSame(item, evicting[id], $"call {id} (tiny cache)");
        }

        var onMetrics = PrometheusText.Parse(await on.Http.GetStringAsync("/metrics"));
        Assert.True(onMetrics.Value("qservice_prefix_cache_hit_tokens_total", ("model", "policy")) > 0);
        Assert.True(onMetrics.Value("qservice_prefix_cache_bytes", ("model", "reference")) > 0);
        var tinyMetrics = PrometheusText.Parse(await tiny.Http.GetStringAsync("/metrics"));
        Assert.True(tinyMetrics.Value("qservice_prefix_cache_evictions_total", ("model", "policy")) > 0);
        Assert.True(tinyMetrics.Value("qservice_prefix_cache_bytes", ("model", "policy")) <= 24576 / 2);
        var offMetrics = PrometheusText.Parse(await off.Http.GetStringAsync("/metrics"));
        Assert.Equal(0, offMetrics.Value("qservice_prefix_cache_bytes", ("model", "policy")), 0);
    }

    [Fact]
    public async Task PrefixesOfTheReferencePair_InRandomOrder_MatchTransformers()
    {
        var pairs = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "pair_expected.json"))).RootElement
            .GetProperty("pairs").EnumerateArray().ToArray();
        await using var server = await Start("--PrefixCache:BlockSize=4");
        var rng = new Random(3);
        var calls = pairs.SelectMany((p, n) =>
        {
            int[] response = [.. p.GetProperty("response_ids").EnumerateArray().Select(e => e.GetInt32())];
            return Enumerable.Range(1, response.Length).Select(length => (Pair: n, Length: length));
        }).OrderBy(_ => rng.Next()).ToList();
        foreach (var (n, length) in calls)
        {
            var p = pairs[n];
            int[] prompt = [.. p.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32())];
            int[] response = [.. p.GetProperty("response_ids").EnumerateArray().Select(e => e.GetInt32())];
            var reply = await server.Channel.Scorer.ScoreAsync(new ScoreRequest
            {
                Items = { new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { response[..length] } } },
            });
            double[] policy = [.. p.GetProperty("policy_logprobs").EnumerateArray().Select(e => e.GetDouble())];
            double[] reference = [.. p.GetProperty("reference_logprobs").EnumerateArray().Select(e => e.GetDouble())];
            for (int t = 0; t < length; t++)
            {
                Assert.True(Math.Abs(reply.Results[0].PolicyLogprobs[t] - policy[t]) <= 1e-4, $"pair {n}, prefix {length}, token {t}: policy");
                Assert.True(Math.Abs(reply.Results[0].ReferenceLogprobs[t] - reference[t]) <= 1e-4, $"pair {n}, prefix {length}, token {t}: reference");
            }
        }
        var metrics = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics"));
        Assert.True(metrics.Value("qservice_prefix_cache_hit_tokens_total", ("model", "policy")) > 0, "the random order should reuse prefixes");
    }
}
