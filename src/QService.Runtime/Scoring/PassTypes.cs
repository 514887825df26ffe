namespace QService.Runtime.Scoring;

/// <summary>
/// The keys and values of one run of positions of one model, as a prefix cache holds it: opaque outside the
/// runtime (the tensors stay inside), sized for the cache's budget, owned by its holder until disposed.
/// </summary>
public interface ICachedBlock : IDisposable
{
    long Bytes { get; }
}

/// <summary>
/// One sequence of a forward pass: its tokens, the first position to score, and the cached past it continues
/// (<paramref name="Past"/>: blocks covering positions [0, CachedLength)).
/// </summary>
/// <param name="FirstTarget">first position whose token's log-probability is returned; at least max(1, CachedLength)</param>
/// <param name="NewBlockSize">when > 0, return blocks of this many positions for the complete runs from CachedLength on</param>
public sealed record PassInput(int[] Tokens, int FirstTarget, int CachedLength = 0, IReadOnlyList<ICachedBlock>? Past = null, int NewBlockSize = 0);

/// <summary>One sequence's share of a forward pass: log-probabilities of positions FirstTarget.., the last position's logits when asked, and the new blocks (the caller owns them).</summary>
public sealed record PassResult(float[] Logprobs, float[]? LastLogits, IReadOnlyList<ICachedBlock> NewBlocks);

/// <summary>Copies of a sequence to start decoding from; its input's FirstTarget is not used (decoding scores the next token only).</summary>
public sealed record DecodeStart(PassInput Input, int Copies);

/// <summary>What adding a sequence to a decode batch gives: its next-token log-probabilities and the new cacheable blocks (the caller owns them).</summary>
public sealed record DecodeAdmission(ReadOnlyMemory<float> NextLogprobs, IReadOnlyList<ICachedBlock> NewBlocks);
