namespace QService.Engine.Backends;

/// <summary>Which of the pair a forward pass runs.</summary>
public enum ModelRole { Policy, Reference }

/// <summary>
/// The seam between the batcher and the models: what the model-owner thread asks of them. The real backend
/// (<see cref="ModelPairBackend"/>) runs LibTorch; tests drive the batcher's batching, cancellation and
/// failure handling with fakes. Called only from the one owner thread.
/// </summary>
public interface IScoringBackend : IDisposable
{
    /// <summary>Runs a few tiny passes so that the first real request does not pay for kernel selection.</summary>
    void WarmUp();

    /// <summary>
    /// One forward pass of one model over sequences of different lengths. For sequence b, returns the
    /// log-probabilities of tokens firstTargets[b] .. end, each given the tokens before it, and with
    /// <paramref name="lastLogits"/> the float32 logits at its last position (the next token's distribution).
    /// </summary>
    ForwardResult[] Forward(ModelRole role, IReadOnlyList<int[]> sequences, IReadOnlyList<int> firstTargets, bool lastLogits);
}

/// <summary>One sequence's share of a forward pass.</summary>
public sealed record ForwardResult(float[] Logprobs, float[]? LastLogits = null);
