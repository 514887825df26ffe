using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Backends;
using QService.Engine.Batching;
using QService.Engine.Caching;
using QService.Engine.Decoding;
using QService.Engine.Sampling;
using QService.Engine.Telemetry;
using QService.Engine.Tests.Batching;
using QService.Runtime.Scoring;

namespace QService.Engine.Tests.Caching;

/// <summary>
/// Models whose RoPE depends on the pass length (longrope past original_max_position_embeddings): cached keys and log-probabilities are
/// reused only within the regime that computed them, shared prefixes are computed in their items' regime, and a sample whose steps ran in
/// another regime than its whole sequence reports Score's numbers. The fake backend's regime: 1 past 10 tokens, as longrope with an original
/// context of 10.
/// </summary>
public class RopeRegimeCacheTests
{
    const int Original = 10;

    sealed class Block : ICachedBlock
    {
        public long Bytes => 10;
        public void Dispose() { }
    }

    static Block[] Blocks(int n) => [.. Enumerable.Range(0, n).Select(_ => new Block())];
    static float[] Lp(int from, int to) => [.. Enumerable.Range(from, to - from).Select(p => (float)-p)];

    static FakeBackend Backend() => new() { Regime = (_, length) => length > Original ? 1 : 0 };

    static DynamicBatcher Start(FakeBackend backend)
    {
        var batcher = new DynamicBatcher(() => backend, new BatchingOptions(), new EngineTelemetry(() => 0), NullLogger.Instance,
            new PrefixCacheOptions { Enabled = true, BlockSize = 4, MaxBytes = 1 << 20 });
        batcher.Start();
        return batcher;
    }

    static WorkItem Item(int[] tokens, int promptTokens = 1) => new(tokens, promptTokens, new RequestContext(default), CancellationToken.None);

    [Fact]
    public void BlocksOfOneRegime_AreFoundOnlyByLookupsOfThatRegime()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        int[] tokens = [5, 6, 7, 8, 9];
        cache.Insert(cache.Lookup(tokens, 1, regime: 0), Blocks(2), Lp(1, 5));
        cache.EndPass();
        Assert.Equal(4, cache.Lookup(tokens, 1, regime: 0).ReusableLength);
        Assert.Equal(0, cache.Lookup(tokens, 1, regime: 1).ReusableLength);
        Assert.Equal(0, cache.CachedLength(tokens, 4, regime: 1));
        cache.EndPass();

        // The same tokens computed in regime 1 are blocks of their own, with their own log-probabilities.
        var hit = cache.Lookup(tokens, 1, regime: 1);
        Assert.Equal(1, hit.Regime);
        cache.Insert(hit, Blocks(2), [.. Lp(1, 5).Select(l => l - 100)]);
        cache.EndPass();
        Assert.Equal(4, cache.Count);
        Assert.Equal(Lp(1, 4), cache.Lookup(tokens, 1, regime: 0).CachedLogprobs);
        Assert.Equal(Lp(1, 4).Select(l => l - 100), cache.Lookup(tokens, 1, regime: 1).CachedLogprobs);
    }

    [Fact]
    public void EvictingABlockOfOneRegime_LeavesTheSameTokensOfTheOther()
    {
        // Room for 3 blocks of 10 bytes: the fourth evicts the least recently used leaf, regime 0's.
        using var cache = new PrefixCache(30, blockSize: 2);
        cache.Insert(cache.Lookup([1, 2, 3], 1, regime: 0), Blocks(1), Lp(1, 3));
        cache.EndPass();
        cache.Insert(cache.Lookup([1, 2, 3, 4, 5], 1, regime: 1), Blocks(2), Lp(1, 5));
        cache.EndPass();
        cache.Insert(cache.Lookup([7, 8, 9], 1, regime: 1), Blocks(1), Lp(1, 3));
        cache.EndPass();
        Assert.Equal(3, cache.Count);
        Assert.Equal(1, cache.Evictions);
        Assert.Equal(0, cache.CachedLength([1, 2, 3], 2, regime: 0));
        Assert.Equal(4, cache.CachedLength([1, 2, 3, 4, 5], 4, regime: 1));
    }

    [Fact]
    public async Task AnItemPastTheSwitch_DoesNotContinueBlocksOfAShorterPass_ButDoesThoseOfItsOwnRegime()
    {
        var backend = Backend();
        using var batcher = Start(backend);
        int[] tokens = [.. Enumerable.Range(1, 20)];
        foreach (int length in new[] { 9, 14, 18 })
        {
            var item = Item(tokens[..length]);
            batcher.Enqueue([item]);
            var result = await item.Completion.Task;
            Assert.Equal(tokens[1..length].Select(t => (float)t), result.Policy.Logprobs);
        }
        var passes = backend.Inputs.Where(p => p.Role == ModelRole.Policy).Select(p => p.Inputs.Single()).ToList();
        Assert.Equal([0, 0, 12], passes.Select(p => p.CachedLength)); // 14 tokens: regime 1, so the 9-token pass's 8 cached are not its own
        Assert.All(passes, p => Assert.Equal(0, p.RopeLength));
    }

    [Fact]
    public async Task ASharedPrefix_IsComputedInTheRegimeOfItsItems_AndOnlyItemsOfOneRegimeShareIt()
    {
        var backend = Backend();
        using var batcher = Start(backend);
        int[] shared = [.. Enumerable.Range(1, 9)];
        // Two candidates past the switch and one short of it, all after the same 9 tokens.
        WorkItem[] items = [Item([.. shared, 50, 51, 52, 53]), Item([.. shared, 60, 61, 62, 63]), Item([.. shared, 70])];
        batcher.Enqueue(items);
        var results = await Task.WhenAll(items.Select(i => i.Completion.Task));
        for (int i = 0; i < items.Length; i++) Assert.Equal(items[i].Tokens[1..].Select(t => (float)t), results[i].Policy.Logprobs);

        var passes = backend.Inputs.Where(p => p.Role == ModelRole.Policy).ToList();
        var prefill = passes[0].Inputs.Single(); // the long candidates' 8 shared tokens, turned as their 13
        Assert.Equal(shared[..8], prefill.Tokens);
        Assert.Equal(13, prefill.RopeLength);
        var later = passes.Skip(1).SelectMany(p => p.Inputs).ToList();
        Assert.Equal([8, 8, 0], items.Select(i => later.Single(p => p.Tokens.SequenceEqual(i.Tokens)).CachedLength));
    }

    [Fact]
    public async Task ASampleWhoseStepsRanInAnotherRegime_ReportsScoresNumbers_OthersTheirSteps()
    {
        var backend = Backend();
        using var batcher = Start(backend);
        int[] prompt = [1, 2, 3, 4, 5, 6, 7, 8];
        // 8 + 4 = 12 tokens: steps over 8..11 tokens, two of them short of the switch. 8 + 2 = 10: every step and the whole in regime 0.
        var crossing = new SampleWork(prompt, 1, new TokenDistribution(Alpha: 1), 3, 4, FinishReason.Length, null, null, new RequestContext(default), default);
        var within = new SampleWork(prompt, 1, new TokenDistribution(Alpha: 1), 3, 2, FinishReason.Length, null, null, new RequestContext(default), default);
        batcher.Enqueue(crossing);
        var crossed = (await crossing.Completion.Task).Single();
        batcher.Enqueue(within);
        var stayed = (await within.Completion.Task).Single();

        // Score's numbers: the fake's forward pass (log-prob = token id under the policy, -id under the reference).
        Assert.Equal(crossed.Tokens.Select(t => (float)t), crossed.Policy);
        Assert.Equal(crossed.Tokens.Select(t => (float)-t), crossed.Reference);
        var rescore = backend.Inputs.Where(p => p.Role == ModelRole.Policy).Select(p => p.Inputs.Single()).Single();
        Assert.Equal([.. prompt, .. crossed.Tokens], rescore.Tokens);
        Assert.Equal(prompt.Length, rescore.FirstTarget);
        // The steps' numbers: the fake decode batch's next-token distributions.
        var sequence = prompt.ToList();
        for (int t = 0; t < stayed.Tokens.Length; t++)
        {
            Assert.Equal(FakeDecodeBatch.Next(ModelRole.Policy, sequence)[stayed.Tokens[t]], stayed.Policy[t]);
            sequence.Add(stayed.Tokens[t]);
        }
    }
}
