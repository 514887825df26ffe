using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Backends;
using QService.Engine.Sampling;
using QService.Engine.Tests.Batching;
using static QService.Engine.Tests.Scoring.FakeEngine;

namespace QService.Engine.Tests.Scoring;

/// <summary>Several named policies against one reference, on the fake backend (policy p's log-prob of token t is t + 0.25 p).</summary>
public class MultiPolicyTests
{
    static readonly string[] Names = ["dpo", "nca", "ipo"];

    static readonly ServedModels ThreePolicies = Models with
    {
        Info = Models.Info with
        {
            PolicyName = "dpo",
            PolicyList = [.. Names.Select(n => new ServedPolicy(n, n + "-model", "Fake"))],
        },
    };

    static async Task<(ScoringEngine Engine, FakeBackend Backend)> StartAsync(bool cache = false, BatchingOptions? batching = null)
    {
        var backend = new FakeBackend { Vocab = Vocab, PolicyNames = Names };
        var engine = new ScoringEngine(() => new LoadedBackend(backend, ThreePolicies), batching ?? new BatchingOptions(),
            new RequestLimits { MaxItemsPerRequest = 64, MaxTokensPerRequest = 4000 }, NullLogger.Instance,
            new PrefixCacheOptions { Enabled = cache, BlockSize = 4, MaxBytes = 1 << 20 });
        engine.Start();
        await engine.Ready;
        return (engine, backend);
    }

    static int SequencesRunBy(FakeBackend backend, ModelRole role) => backend.Calls.Where(c => c.Role == role).Sum(c => c.Sequences.Length);

    [Fact]
    public async Task ScoreUnderSeveralPolicies_ReturnsEachItemUnderEach_InOrder_AndRunsTheReferenceOncePerItem()
    {
        var (engine, backend) = await StartAsync();
        using var _ = engine;
        ScoreItemInput[] items = [Ids([1, 2], [3, 4, 5], "a"), Ids([1, 7], [8, 9], "b")];
        var results = await engine.ScoreAsync(items, new ScoreOptions(Beta: 0.5, Policies: ["ipo", "dpo"]), default);

        Assert.Equal(["a/ipo", "a/dpo", "b/ipo", "b/dpo"], results.Select(r => $"{r.Id}/{r.Policy}"));
        foreach (var r in results)
        {
            int p = Array.IndexOf(Names, r.Policy);
            Assert.Equal(r.TokenIds.Select(t => t + 0.25f * p), r.PolicyLogprobs);
            Assert.Equal(r.TokenIds.Select(t => (float)-t), r.ReferenceLogprobs);
            Assert.Equal(r.TokenIds.Sum(t => 0.5 * ((double)(t + 0.25f * p) - -t)), r.Reward, 12);
        }
        Assert.Equal(2, SequencesRunBy(backend, ModelRole.Reference));
        Assert.Equal(2, SequencesRunBy(backend, ModelRole.OfPolicy(2)));
        Assert.Equal(2, SequencesRunBy(backend, ModelRole.OfPolicy(0)));
        Assert.Equal(0, SequencesRunBy(backend, ModelRole.OfPolicy(1)));
    }

    [Fact]
    public async Task ItemsNamingDifferentPolicies_ShareABatch_EachPolicyRunsOnlyItsItems_TheReferenceAll()
    {
        // A long queue delay: all three requests' items land in one batch.
        var (engine, backend) = await StartAsync(batching: new BatchingOptions { MaxQueueDelayMs = 200, MaxBatchSequences = 3 });
        using var _ = engine;
        var calls = Names.Select((name, p) => engine.ScoreAsync([Ids([1, 2], [3 + p]) with { Policy = name }], new ScoreOptions(), default)).ToArray();
        var results = (await Task.WhenAll(calls)).Select(r => r.Single()).ToArray();

        for (int p = 0; p < Names.Length; p++)
        {
            Assert.Equal(Names[p], results[p].Policy);
            Assert.Equal(3 + p + 0.25f * p, results[p].PolicyLogprobs.Single());
            var own = Assert.Single(backend.Calls, c => c.Role == ModelRole.OfPolicy(p));
            Assert.Equal([1, 2, 3 + p], Assert.Single(own.Sequences));
        }
        Assert.Equal(3, Assert.Single(backend.Calls, c => c.Role == ModelRole.Reference).Sequences.Length);
    }

    [Fact]
    public async Task WithoutAPolicyNamed_TheFirstScores_AndTheResultSaysSo()
    {
        var (engine, _) = await StartAsync();
        using var __ = engine;
        var result = (await engine.ScoreAsync([Ids([1], [4])], new ScoreOptions(), default)).Single();
        Assert.Equal("dpo", result.Policy);
        Assert.Equal(4f, result.PolicyLogprobs.Single());
    }

    [Theory]
    [InlineData(new[] { "dpo", "sft" }, null, "policies[1] is 'sft', which this server does not serve")]
    [InlineData(new[] { "nca", "nca" }, null, "policies[1] repeats 'nca'")]
    [InlineData(new[] { "nca" }, "dpo", "items[0].policy is set and so is the request's policies")]
    [InlineData(null, "DPO", "items[0].policy is 'DPO', which this server does not serve; the served policies are 'dpo', 'nca', 'ipo'")]
    public async Task BadPolicyNames_AreInvalidArgument_NamingTheField(string[]? policies, string? itemPolicy, string expected)
    {
        var (engine, backend) = await StartAsync();
        using var _ = engine;
        var error = await Assert.ThrowsAsync<ScoringException>(() =>
            engine.ScoreAsync([Ids([1], [4]) with { Policy = itemPolicy }], new ScoreOptions(Policies: policies), default));
        Assert.Equal(ScoringErrorKind.InvalidArgument, error.Kind);
        Assert.Contains(expected, error.Message);
        Assert.Empty(backend.Calls);
    }

    [Fact]
    public async Task ManyPoliciesOnALongItem_AreRefusedWhenTheyCannotFitOneBatch()
    {
        // 10 tokens x (3 policies + reference) = 40 > 30; under one policy it costs 20 and fits.
        var (engine, _) = await StartAsync(batching: new BatchingOptions { MaxBatchTokens = 30 });
        using var __ = engine;
        var item = Ids([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
        Assert.Single(await engine.ScoreAsync([item], new ScoreOptions(), default));
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.ScoreAsync([item], new ScoreOptions(Policies: Names), default));
        Assert.Equal(ScoringErrorKind.ResourceExhausted, error.Kind);
        Assert.Contains("ask for fewer policies", error.Message);
    }

    [Fact]
    public async Task TheReferencesPrefixCache_IsSharedByEveryPolicy()
    {
        var (engine, backend) = await StartAsync(cache: true);
        using var _ = engine;
        int[] prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        await engine.ScoreAsync([Ids(prompt, [10]) with { Policy = "dpo" }], new ScoreOptions(), default);
        await engine.ScoreAsync([Ids(prompt, [11]) with { Policy = "nca" }], new ScoreOptions(), default);

        var referencePasses = backend.Inputs.Where(i => i.Role == ModelRole.Reference).Select(i => i.Inputs.Single()).ToList();
        Assert.Equal(0, referencePasses[0].PastLength);
        // The two blocks of 4 that dpo's request computed, less the last position, which the pass recomputes (the hit rule).
        Assert.Equal(7, referencePasses[1].PastLength);
        var ncaPass = backend.Inputs.Single(i => i.Role == ModelRole.OfPolicy(1)).Inputs.Single();
        Assert.Equal(0, ncaPass.PastLength); // nca's own cache was empty
    }

    [Fact]
    public async Task NextTokensAndSample_UseTheItemsPolicy()
    {
        var (engine, _) = await StartAsync();
        using var __ = engine;
        var item = Ids([1, 2], [3]) with { Policy = "ipo" };
        var choices = (await engine.NextTokensAsync([item], new NextTokenOptions(TopK: 2, CandidateIds: null), default)).Single();
        Assert.Equal("ipo", choices.Policy);
        Assert.Equal(3 + 0.5f, (float)(choices.Q / 0.1 + -3), 4); // Q = beta (policy - reference) of token 3 under ipo

        var sampled = await engine.SampleAsync(Ids([1, 2], []) with { Policy = "nca" }, new SampleOptions { N = 2, MaxNewTokens = 3, Seed = 5 }, default);
        foreach (var sample in sampled.Samples)
        {
            Assert.Equal("nca", sample.Scores.Policy);
            var sequence = new List<int> { 1, 2 };
            for (int t = 0; t < sample.Scores.TokenIds.Length; t++)
            {
                Assert.Equal(FakeDecodeBatch.Next(ModelRole.OfPolicy(1), sequence, Vocab)[sample.Scores.TokenIds[t]], sample.Scores.PolicyLogprobs[t]);
                sequence.Add(sample.Scores.TokenIds[t]);
            }
        }
    }
}
