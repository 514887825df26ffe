using QService.Runtime.Scoring;

namespace QService.Engine.Backends;

/// <summary>
/// Which model a forward pass runs: one of the served policies (by its index in the served order) or the
/// reference they all share.
/// </summary>
public readonly record struct ModelRole(int PolicyIndex)
{
    /// <summary>The first policy: the default one, and the only one of a plain pair.</summary>
    public static readonly ModelRole Policy = new(0);
    public static readonly ModelRole Reference = new(-1);

    public static ModelRole OfPolicy(int index) =>
        index >= 0 ? new(index) : throw new ArgumentOutOfRangeException(nameof(index), index, "a policy index is >= 0");

    public bool IsReference => PolicyIndex < 0;

    public override string ToString() => IsReference ? "reference" : $"policy {PolicyIndex}";
}

/// <summary>
/// The seam between the batcher and the models: what the model-owner thread asks of them, in the runtime's
/// records (<see cref="PassInput"/>, <see cref="PassResult"/>, cached blocks as opaque <see cref="ICachedBlock"/>
/// handles). The real backend (<see cref="ModelPairBackend"/>) runs LibTorch; tests drive the batcher's
/// batching, cancellation and failure handling with fakes. Called only from the one owner thread.
/// </summary>
public interface IScoringBackend : IDisposable
{
    /// <summary>Runs a few tiny passes so that the first real request does not pay for kernel selection.</summary>
    void WarmUp();

    /// <summary>
    /// One forward pass of one model over sequences of different lengths, each continuing its own cached past
    /// (or none). For each input, returns the log-probabilities of tokens FirstTarget .. end, each given the
    /// tokens before it; with <paramref name="lastLogits"/> the float32 logits at its last position (the next
    /// token's distribution); and when asked, its new complete blocks.
    /// </summary>
    PassResult[] Forward(ModelRole role, IReadOnlyList<PassInput> inputs, bool lastLogits);

    /// <summary>
    /// The RoPE regime of a pass over <paramref name="length"/> tokens (ModelConfig.RopeRegime): keys, values and log-probabilities
    /// computed in one regime are reused only in the same one.
    /// </summary>
    int RopeRegime(ModelRole role, int length);

    /// <summary>Tensors alive on the calling (owner) thread: what a leak would grow.</summary>
    long LiveTensors { get; }

    /// <summary>The served names of the policies it runs against its one reference, by index (metric and log labels).</summary>
    IReadOnlyList<string> PolicyNames => ["policy"];

    /// <summary>An empty decode batch of one model, for sampling.</summary>
    IDecodeBatch StartDecoding(ModelRole role);
}
