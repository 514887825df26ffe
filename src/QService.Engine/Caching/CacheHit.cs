using QService.Runtime.Scoring;

namespace QService.Engine.Caching;

/// <summary>
/// What a <see cref="PrefixCache"/> holds for one sequence, and so what its pass computes: the hit rule, in
/// one place (as vLLM's get_computed_blocks). The cache serves the first <see cref="ReusableLength"/> tokens in
/// whole blocks, but the pass recomputes the last of them, whose output predicts the first new token: it reads
/// the cached keys and values of positions [0, <see cref="PastLength"/>) and computes from there. Log-probabilities
/// of tokens [firstTarget, ReusableLength) come with the hit; the pass computes them from <see cref="FirstComputed"/> on.
/// Blocks are found, and the pass's new ones stored, under its RoPE <see cref="Regime"/> only.
/// </summary>
internal sealed record CacheHit(int[] Tokens, int ReusableLength, int FirstComputed, IReadOnlyList<ICachedBlock> Blocks, float[] CachedLogprobs, int BlockSize,
    int Regime = 0)
{
    public int PastLength => Math.Max(0, ReusableLength - 1);

    /// <summary>The pass that continues this hit, asking for the new complete blocks after it.</summary>
    public PassInput Input() => new(Tokens, FirstComputed, Blocks, PastLength, ReusableLength, BlockSize);
}

/// <summary>Tokens a cache's hits served and left to compute, and blocks it evicted, since it was made.</summary>
internal readonly record struct CacheCounts(long HitTokens, long ComputedTokens, long Evictions)
{
    public static CacheCounts operator -(CacheCounts a, CacheCounts b) =>
        new(a.HitTokens - b.HitTokens, a.ComputedTokens - b.ComputedTokens, a.Evictions - b.Evictions);
}
