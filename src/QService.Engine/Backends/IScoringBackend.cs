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
    /// One forward pass of one model over sequences of different lengths, each continuing its own cached past
    /// (or none). For each input, returns the log-probabilities of tokens FirstTarget .. end, each given the
    /// tokens before it; with <paramref name="lastLogits"/> the float32 logits at its last position (the next
    /// token's distribution); and when asked, the cacheable state of its new complete blocks.
    /// </summary>
    ForwardResult[] Forward(ModelRole role, IReadOnlyList<ForwardInput> inputs, bool lastLogits);

    /// <summary>Tensors alive on the calling (owner) thread: what a leak would grow.</summary>
    long LiveTensors { get; }

    /// <summary>An empty decode batch of one model, for sampling.</summary>
    IDecodeBatch StartDecoding(ModelRole role);
}

/// <summary>Backend state cached for a block of positions (keys and values), owned by the cache once handed over.</summary>
public interface ICachedState : IDisposable
{
    long Bytes { get; }
}

/// <summary>
/// One sequence of a forward pass. <paramref name="Past"/> covers positions [0, CachedLength) in blocks; with
/// <paramref name="NewBlockSize"/> > 0 the backend returns the state of the complete blocks from CachedLength on.
/// </summary>
public sealed record ForwardInput(int[] Tokens, int FirstTarget, int CachedLength = 0, IReadOnlyList<ICachedState>? Past = null, int NewBlockSize = 0);

/// <summary>One sequence's share of a forward pass.</summary>
public sealed record ForwardResult(float[] Logprobs, float[]? LastLogits = null, IReadOnlyList<ICachedState>? NewBlocks = null);
