using Grpc.Core;
using QService.Engine;
using QService.Protos.V1;
using QService.Runtime.Scoring;
using ScoredItem = QService.Protos.V1.ScoredItem;

namespace QService.Host.Tests;

/// <summary>Score and ScoreStream over real sockets against the HF reference pair.</summary>
[Collection(nameof(PairServerCollection))]
public class ScoringEndToEndTests(PairServer fixture)
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;

    static int[] Ints(System.Text.Json.JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
    static double[] Doubles(System.Text.Json.JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    ScoreRequest PairRequest()
    {
        var request = new ScoreRequest();
        int n = 0;
        foreach (var pair in fixture.Expected.GetProperty("pairs").EnumerateArray())
            request.Items.Add(new ScoreItem { Id = $"pair{n++}", PromptTokenIds = { Ints(pair.GetProperty("prompt_ids")) },
                ResponseTokenIds = { Ints(pair.GetProperty("response_ids")) } });
        return request;
    }

    [Fact]
    public async Task Score_MatchesReferenceNumbersAndDefinitions()
    {
        var reply = await _scorer.ScoreAsync(PairRequest());
        Assert.Equal(0.1f, reply.Beta);
        Assert.Equal("policy", reply.PolicyModel);
        Assert.Equal("reference", reply.ReferenceModel);
        var pairs = fixture.Expected.GetProperty("pairs").EnumerateArray().ToArray();
        Assert.Equal(pairs.Length, reply.Results.Count);
        for (int p = 0; p < pairs.Length; p++)
        {
            var r = reply.Results[p];
            Assert.Equal($"pair{p}", r.Id);
            Assert.Equal(Ints(pairs[p].GetProperty("response_ids")), r.TokenIds.ToArray());
            Assert.Equal(pairs[p].GetProperty("prompt_ids").GetArrayLength(), r.PromptTokens);
            double[] policy = Doubles(pairs[p].GetProperty("policy_logprobs")), reference = Doubles(pairs[p].GetProperty("reference_logprobs"));
            double[] credits = Doubles(pairs[p].GetProperty("credits"));
            double q = 0;
            for (int t = 0; t < r.TokenIds.Count; t++)
            {
                Assert.True(Math.Abs(r.PolicyLogprobs[t] - policy[t]) <= 1e-4, $"pair {p} token {t} policy");
                Assert.True(Math.Abs(r.ReferenceLogprobs[t] - reference[t]) <= 1e-4, $"pair {p} token {t} reference");
                Assert.True(Math.Abs(r.Credits[t] - credits[t]) <= 2e-5, $"pair {p} token {t} credit");
                // The definitions, on the returned numbers themselves.
                double credit = 0.1 * ((double)r.PolicyLogprobs[t] - r.ReferenceLogprobs[t]);
                Assert.True(Math.Abs(r.Credits[t] - credit) <= 1e-6, $"credit definition at {t}");
                q += r.Credits[t];
                Assert.True(Math.Abs(r.QValues[t] - q) <= 1e-5, $"q definition at {t}");
            }
            Assert.True(Math.Abs(r.Reward - r.Credits.Sum(c => (double)c)) <= 1e-5, "reward = sum of credits");
            Assert.Equal(r.QValues[^1], (float)r.Reward, 1e-5f);
        }
    }

    [Fact]
    public async Task Score_EqualsTheRuntimeInProcess()
    {
        var reply = await _scorer.ScoreAsync(PairRequest());
        using var policy = CausalLanguageModel.Load(PairServer.PolicyPath, new ModelLoadOptions("cpu"));
        using var reference = CausalLanguageModel.Load(PairServer.ReferencePath, new ModelLoadOptions("cpu"));
        foreach (var (item, result) in PairRequest().Items.Zip(reply.Results))
        {
            int[] seq = [.. item.PromptTokenIds, .. item.ResponseTokenIds];
            var p = policy.ScoreNextTokens([seq])[0].Logprobs[(item.PromptTokenIds.Count - 1)..];
            var r = reference.ScoreNextTokens([seq])[0].Logprobs[(item.PromptTokenIds.Count - 1)..];
            var (credits, q, reward) = CreditMath.Compute(p, r, 0.1);
            AssertClose(p, result.PolicyLogprobs, 1e-5);
            AssertClose(r, result.ReferenceLogprobs, 1e-5);
            AssertClose(credits, result.Credits, 1e-6);
            AssertClose(q, result.QValues, 1e-6);
            Assert.True(Math.Abs(reward - result.Reward) <= 1e-6);
        }
    }

    [Fact]
    public async Task ScoreStream_EqualsScore()
    {
        var unary = await _scorer.ScoreAsync(PairRequest());
        using var call = _scorer.ScoreStream();
        var requests = new[] { PairRequest(), PairRequest() };
        requests[1].Beta = 0.5f;
        foreach (var request in requests) await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        var replies = new List<ScoreResponse>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync()) replies.Add(reply);
        Assert.Equal(2, replies.Count);
        Assert.Equal(unary.Results, replies[0].Results);
        Assert.Equal(0.5f, replies[1].Beta);
        for (int i = 0; i < unary.Results.Count; i++)
            AssertClose(unary.Results[i].Credits.Select(c => c * 5).ToArray(), replies[1].Results[i].Credits, 1e-5);
    }

    [Fact]
    public async Task SixtyFourConcurrentCallers_GetTheirNumbersAlone_AndAreBatched()
    {
        var rng = new Random(7);
        var requests = Enumerable.Range(0, 64).Select(i =>
        {
            var item = new ScoreItem { Id = $"c{i}" };
            item.PromptTokenIds.Add(Enumerable.Range(0, 1 + rng.Next(30)).Select(_ => rng.Next(320)));
            item.ResponseTokenIds.Add(Enumerable.Range(0, 1 + rng.Next(60)).Select(_ => rng.Next(320)));
            return new ScoreRequest { Items = { item } };
        }).ToArray();
        var alone = new List<ScoredItem>();
        foreach (var r in requests) alone.Add((await _scorer.ScoreAsync(r)).Results[0]);

        long batchesBefore = await MultiSequenceBatches();
        var together = await Task.WhenAll(requests.Select(async r => (await _scorer.ScoreAsync(r)).Results[0]));
        for (int i = 0; i < requests.Length; i++)
        {
            AssertClose(alone[i].PolicyLogprobs.ToArray(), together[i].PolicyLogprobs, 1e-5);
            AssertClose(alone[i].ReferenceLogprobs.ToArray(), together[i].ReferenceLogprobs, 1e-5);
            AssertClose(alone[i].Credits.ToArray(), together[i].Credits, 1e-5);
        }
        Assert.True(await MultiSequenceBatches() > batchesBefore, "no forward pass held more than one sequence");
    }

    /// <summary>Forward passes with more than one sequence so far, from the server's own metrics.</summary>
    async Task<long> MultiSequenceBatches()
    {
        var metrics = PrometheusText.Parse(await fixture.Server.Http.GetStringAsync("/metrics"));
        return (long)(metrics.Value("qservice_batch_sequences_count") - metrics.Value("qservice_batch_sequences_bucket", ("le", "1")));
    }

    static void AssertClose(IReadOnlyList<float> expected, IReadOnlyList<float> actual, double tolerance)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"[{i}] {expected[i]} vs {actual[i]}");
    }
}
