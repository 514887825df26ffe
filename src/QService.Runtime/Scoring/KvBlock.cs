using static TorchSharp.torch;

namespace QService.Runtime.Scoring;

/// <summary>
/// The keys and values of one run of positions of one model, per layer [kv_heads, length, head_dim]: a unit
/// of a prefix cache. It owns its tensors (detached from every dispose scope) until disposed.
/// </summary>
public sealed class KvBlock : IDisposable
{
    internal Tensor[] Keys { get; }
    internal Tensor[] Values { get; }
    public int Length { get; }
    public long Bytes { get; }

    internal KvBlock(Tensor[] keys, Tensor[] values)
    {
        Keys = keys;
        Values = values;
        Length = (int)keys[0].shape[1];
        Bytes = keys.Concat(values).Sum(t => t.NumberOfElements * t.ElementSize);
    }

    public void Dispose()
    {
        foreach (var t in Keys) t.Dispose();
        foreach (var t in Values) t.Dispose();
    }
}

/// <summary>
/// One sequence of an <see cref="CausalLanguageModel.Extend"/> pass: its tokens, the first position to score,
/// and the cached past it starts from (<paramref name="Past"/>: blocks covering positions [0, CachedLength)).
/// </summary>
/// <param name="FirstTarget">first position whose token's log-probability is returned; at least max(1, CachedLength)</param>
/// <param name="NewBlockSize">when > 0, return blocks of this many positions for the complete runs from CachedLength on</param>
public sealed record ExtendInput(int[] Tokens, int FirstTarget, int CachedLength, IReadOnlyList<KvBlock> Past, int NewBlockSize = 0);

/// <summary>Log-probabilities of positions FirstTarget.., the last position's logits when asked, and the new blocks (the caller owns them).</summary>
public sealed record ExtendResult(float[] Logprobs, float[]? LastLogits, KvBlock[] NewBlocks);
