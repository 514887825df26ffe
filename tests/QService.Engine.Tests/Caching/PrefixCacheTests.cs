using QService.Engine.Caching;
using QService.Runtime.Scoring;

namespace QService.Engine.Tests.Caching;

public class PrefixCacheTests
{
    sealed class State : ICachedBlock
    {
        public bool Disposed { get; private set; }
        public long Bytes => 10;
        public void Dispose() => Disposed = true;
    }

    static State[] States(int n) => [.. Enumerable.Range(0, n).Select(_ => new State())];
    static float[] Lp(int from, int to) => [.. Enumerable.Range(from, to - from).Select(p => (float)-p)];

    /// <summary>A pass over <paramref name="tokens"/> scored from <paramref name="firstTarget"/>, its blocks and log-probabilities stored.</summary>
    static void Pass(PrefixCache cache, int[] tokens, int firstTarget, ICachedBlock[] newBlocks, float[] computed) =>
        cache.Insert(cache.Lookup(tokens, firstTarget), newBlocks, computed);

    [Fact]
    public void APrefixIsFoundInWholeBlocks_WithItsLogprobs()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        int[] tokens = [5, 6, 7, 8, 9];
        Pass(cache, tokens, firstTarget: 1, States(2), Lp(1, 5));
        cache.EndPass();
        var hit = cache.Lookup([5, 6, 7, 8, 42, 43], firstTarget: 1);
        Assert.Equal(4, hit.ReusableLength);
        Assert.Equal(Lp(1, 4), hit.CachedLogprobs);
        Assert.Equal(0, cache.Lookup([5, 7], 1).ReusableLength); // another first block
    }

    [Fact]
    public void AHit_RecomputesItsLastCachedPosition_AndIsCountedWhenItsPassEnds()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        Pass(cache, [5, 6, 7, 8, 9], firstTarget: 1, States(2), Lp(1, 5));
        cache.EndPass();
        var hit = cache.Lookup([5, 6, 7, 8, 42, 43], firstTarget: 2);
        Assert.Equal((4, 3, 4), (hit.ReusableLength, hit.PastLength, hit.FirstComputed)); // position 3's output predicts token 4
        Assert.Equal(Lp(2, 4), hit.CachedLogprobs);
        var input = hit.Input();
        Assert.Equal((3, 4, 4, 2, 2), (input.PastLength, input.CachedLength, input.FirstTarget, input.Past!.Count, input.NewBlockSize));
        Assert.Equal(0, cache.Lookup([5, 6], 1).ReusableLength); // a whole-block hit would leave nothing to compute
        Assert.Equal(new CacheCounts(0, 5, 0), cache.Counts);   // the first pass computed everything

        cache.Insert(hit, States(1), Lp(4, 6));
        Assert.Equal(new CacheCounts(3, 5 + 3, 0), cache.Counts);
    }

    [Fact]
    public void BlocksWhoseNeededLogprobsWereNeverComputed_AreNotReused()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        // The first pass scored from position 3 on: positions 1 and 2 have no log-probabilities.
        Pass(cache, [1, 2, 3, 4, 5], firstTarget: 3, States(2), Lp(3, 5));
        cache.EndPass();
        Assert.Equal(4, cache.Lookup([1, 2, 3, 4, 5], firstTarget: 3).ReusableLength);
        cache.EndPass();
        Assert.Equal(0, cache.Lookup([1, 2, 3, 4, 5], firstTarget: 1).ReusableLength);
    }

    [Fact]
    public void EvictionTakesTheLeastRecentlyUsedLeaf_NeverABlockInUse()
    {
        using var cache = new PrefixCache(maxBytes: 30, blockSize: 1);
        var a = States(2);
        Pass(cache, [1, 2, 3], 1, a, Lp(1, 3)); // blocks [1], [1,2]: a chain
        cache.EndPass();
        var b = States(1);
        Pass(cache, [9, 9], 1, b, Lp(1, 2));    // block [9]
        cache.EndPass();
        Assert.Equal(30, cache.Bytes);
        cache.Lookup([1, 2, 3], 1); // uses the chain: it is in use and most recent
        var c = States(1);
        Pass(cache, [7, 7], 1, c, Lp(1, 2));    // over budget: the least recent leaf not in use goes ([9])
        Assert.True(b[0].Disposed);
        Assert.False(a[0].Disposed || a[1].Disposed || c[0].Disposed);
        Assert.Equal(1, cache.Evictions);
        cache.EndPass();
        Assert.Equal(30, cache.Bytes);
    }

    [Fact]
    public void ABlockCachedTwiceInOnePass_KeepsOneCopy()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        var first = States(1);
        var second = States(1);
        // Both items of one pass looked up before either stored its blocks.
        var (hitFirst, hitSecond) = (cache.Lookup([1, 2, 3], 1), cache.Lookup([1, 2, 4], 1));
        cache.Insert(hitFirst, first, Lp(1, 3));
        cache.Insert(hitSecond, second, Lp(1, 3));
        Assert.True(second[0].Disposed);
        Assert.Equal(1, cache.Count);
    }
}
