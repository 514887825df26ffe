namespace QService.Runtime.Scoring;

/// <summary>
/// One model's running sequences while decoding, kept between steps (continuous batching): sequence s sits
/// in slot s. Sequences join with <see cref="Add"/> and leave with <see cref="Remove"/> between steps; a step
/// appends one token to each. <see cref="DecodeBatch"/> runs LibTorch; engine tests use fakes. Owner thread only.
/// </summary>
public interface IDecodeBatch : IDisposable
{
    int Count { get; }

    /// <summary>
    /// Adds sequences, all prompts in one pass. Start s adds Copies sequences that begin as its input.Tokens,
    /// reading input.Past for positions [0, PastLength): its first in slot Count + s, its further copies after
    /// all the firsts, in start order; the rest of its tokens is computed once for all its copies.
    /// Returns per start the next token's log-probabilities over the whole vocabulary and, with NewBlockSize
    /// > 0, the complete blocks from CachedLength on for the prefix cache (the caller owns them).
    /// </summary>
    DecodeAdmission[] Add(IReadOnlyList<DecodeStart> starts);

    /// <summary>Appends tokens[s] to the sequence in slot s, for every slot; returns each one's next-token log-probabilities.</summary>
    ReadOnlyMemory<float>[] Step(int[] tokens);

    /// <summary>Removes the sequence in <paramref name="slot"/>; the last sequence moves into its slot.</summary>
    void Remove(int slot);
}
