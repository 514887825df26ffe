namespace QService.Client.Decoding;

/// <summary>
/// A continuation of a prompt and partial response: its new tokens, their text and credits, and whether the
/// response ends with it (EOS, or the context is full). Reward is the sum of its credits: what it adds to the
/// partial response's Q.
/// </summary>
public sealed record Continuation(int[] TokenIds, string Text, float[] Credits, double Reward, bool Ended);

/// <summary>Continuations of one prefix and the forward tokens (per model) the service ran for them.</summary>
public sealed record ContinuationBatch(IReadOnlyList<Continuation> Continuations, long ForwardTokens);

/// <summary>
/// Where continuations come from: the service's own sampler (<see cref="ServiceSampler"/>), or any generator
/// the service only scores (<see cref="ExternalGenerator"/>, e.g. a larger model served elsewhere).
/// </summary>
public interface IContinuationSource
{
    /// <summary>
    /// n continuations of <paramref name="prompt"/> + <paramref name="response"/>, of at most
    /// <paramref name="maxNewTokens"/> tokens each, scored.
    /// </summary>
    Task<ContinuationBatch> ContinueAsync(string prompt, IReadOnlyList<int> response, int n, int maxNewTokens, ulong seed,
        CancellationToken cancellation = default);
}

/// <summary>A candidate response a strategy considered: its tokens, text, credits and Q (the sum of its credits).</summary>
public sealed record Candidate(int[] TokenIds, string Text, float[] Credits, double Q, bool Ended);

/// <summary>One round of a beam search: every candidate it ranked, and the indices (into Candidates) of those it kept.</summary>
public sealed record BeamRound(IReadOnlyList<Candidate> Candidates, IReadOnlyList<int> Kept);

/// <summary>
/// What a strategy chose: the response with its credits and reward, the forward tokens it spent (per model,
/// prompts counted every time they were sent; the server's prefix cache may have spared some), the candidates
/// it rejected and, for a beam search, its rounds.
/// </summary>
public sealed record DecodeResult(string Strategy, int[] TokenIds, string Text, float[] Credits, double Reward, long ForwardTokens,
    IReadOnlyList<Candidate> Rejected, IReadOnlyList<BeamRound> Rounds);

/// <summary>A decoding strategy over a continuation source.</summary>
public interface IDecodingStrategy
{
    string Name { get; }
    Task<DecodeResult> DecodeAsync(string prompt, ulong seed, CancellationToken cancellation = default);
}
