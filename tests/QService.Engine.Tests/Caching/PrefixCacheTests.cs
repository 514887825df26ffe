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

    [Fact]
    public void APrefixIsFoundInWholeBlocks_WithItsLogprobs()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        int[] tokens = [5, 6, 7, 8, 9];
        cache.Insert(tokens, 0, States(2), Lp(1, 5), firstComputed: 1);
        cache.EndPass();
        var hit = cache.Lookup([5, 6, 7, 8, 42, 43], firstTarget: 1, maxLength: 5);
        Assert.Equal(4, hit.Length);
        Assert.Equal(Lp(1, 4), hit.Logprobs);
        Assert.Equal(0, cache.Lookup([5, 7], 1, 2).Length); // another first block
    }

    [Fact]
    public void BlocksWhoseNeededLogprobsWereNeverComputed_AreNotReused()
    {
        using var cache = new PrefixCache(1000, blockSize: 2);
        // The first pass scored from position 3 on: positions 1 and 2 have no log-probabilities.
        cache.Insert([1, 2, 3, 4, 5], 0, States(2), Lp(3, 5), firstComputed: 3);
        cache.EndPass();
        Assert.Equal(4, cache.Lookup([1, 2, 3, 4, 5], firstTarget: 3, maxLength: 4).Length);
        cache.EndPass();
        Assert.Equal(0, cache.Lookup([1, 2, 3, 4, 5], firstTarget: 1, maxLength: 4).Length);
    }

    [Fact]
    public void EvictionTakesTheLeastRecentlyUsedLeaf_NeverABlockInUse()
    {
        using var cache = new PrefixCache(maxBytes: 30, blockSize: 1);
        var a = States(2);
        cache.Insert([1, 2, 3], 0, a, Lp(1, 3), 1); // blocks [1], [1,2]: a chain
        cache.EndPass();
        var b = States(1);
        cache.Insert([9, 9], 0, b, Lp(1, 2), 1);    // block [9]
        cache.EndPass();
        Assert.Equal(30, cache.Bytes);
        cache.Lookup([1, 2, 3], 1, 2); // uses the chain: it is in use and most recent
        var c = States(1);
        cache.Insert([7, 7], 0, c, Lp(1, 2), 1);    // over budget: the least recent leaf not in use goes ([9])
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
        cache.Insert([1, 2, 3], 0, first, Lp(1, 3), 1);
        cache.Insert([1, 2, 4], 0, second, Lp(1, 3), 1);
        Assert.True(second[0].Disposed);
        Assert.Equal(1, cache.Count);
    }
}
