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
/// One sequence of a forward pass: its tokens, the first position to score, the cached past it continues and
/// the new blocks to return. How much of a cached prefix a pass reads is the prefix cache's rule; the pass
/// takes its lengths as given.
/// </summary>
/// <param name="FirstTarget">first position whose token's log-probability is returned; in [PastLength + 1, Tokens.Length]</param>
/// <param name="Past">cached blocks in order from position 0, covering at least [0, PastLength)</param>
/// <param name="PastLength">positions whose keys and values are read from <paramref name="Past"/>; the pass computes the rest</param>
/// <param name="CachedLength">positions the cache holds already (at least PastLength): new blocks start there</param>
/// <param name="NewBlockSize">when > 0, return blocks of this many positions for the complete runs from CachedLength on</param>
/// <param name="RopeLength">
/// when > 0 (at least Tokens.Length), RoPE turns the positions as in a sequence this long (<see cref="Models.ModelConfig.RopeRegime"/>): a
/// shared prefix computed for the longer items that will continue it; 0: as in the sequence itself
/// </param>
public sealed record PassInput(int[] Tokens, int FirstTarget, IReadOnlyList<ICachedBlock>? Past = null, int PastLength = 0,
    int CachedLength = 0, int NewBlockSize = 0, int RopeLength = 0)
{
    /// <summary>The length whose RoPE the pass uses.</summary>
    internal int RopeLengthOrOwn => RopeLength > 0 ? RopeLength : Tokens.Length;

    /// <summary>The tokens the pass computes: those from PastLength on.</summary>
    internal int[] ComputedTokens => Tokens[PastLength..];

    /// <summary>The runtime's blocks behind <see cref="Past"/>.</summary>
    internal IEnumerable<KvBlock> PastBlocks => (Past ?? []).Select(KvBlock.Of);

    /// <summary>
    /// Throws an ArgumentException naming sequence <paramref name="index"/> unless its lengths fit its tokens and its
    /// past covers PastLength.
    /// </summary>
    internal void ThrowIfPastDoesNotFit(int index)
    {
        int covered = PastBlocks.Sum(b => b.Length);
        if (PastLength < 0 || PastLength >= Tokens.Length || CachedLength < PastLength || CachedLength > Tokens.Length || covered < PastLength)
            throw new ArgumentException($"sequence {index}: a past of {PastLength} positions ({covered} cached) " +
                $"and a cached length of {CachedLength} do not fit {Tokens.Length} tokens (a pass computes at least one position)");
        if (RopeLength != 0 && RopeLength < Tokens.Length)
            throw new ArgumentException($"sequence {index}: a RoPE length of {RopeLength} is shorter than its {Tokens.Length} tokens");
    }
}

/// <summary>
/// One sequence's share of a forward pass: log-probabilities of positions FirstTarget.., the last position's logits
/// when asked, and the new blocks (the caller owns them).
/// </summary>
public sealed record PassResult(float[] Logprobs, float[]? LastLogits, IReadOnlyList<ICachedBlock> NewBlocks);

/// <summary>Copies of a sequence to start decoding from; its input's FirstTarget is not used (decoding scores the next token only).</summary>
public sealed record DecodeStart(PassInput Input, int Copies);

/// <summary>What adding a sequence to a decode batch gives: its next-token log-probabilities and the new cacheable blocks (the caller owns them).</summary>
public sealed record DecodeAdmission(ReadOnlyMemory<float> NextLogprobs, IReadOnlyList<ICachedBlock> NewBlocks);
