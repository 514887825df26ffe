using QService.Runtime.Scoring;

namespace QService.Engine.Backends;

/// <summary>The LibTorch backend: the loaded <see cref="ModelPair"/>, whose models take the seam's records as they are.</summary>
public sealed class ModelPairBackend(ModelPair pair) : IScoringBackend
{
    public ModelPair Pair { get; } = pair;

    public void WarmUp()
    {
        int[] tokens = [0, 1, 2, 3];
        Pair.Policy.ScoreNextTokens([tokens]);
        Pair.Reference.ScoreNextTokens([tokens]);
    }

    // Extend takes LibTorch's plain causal path by itself when nothing is cached and no blocks are asked for.
    public PassResult[] Forward(ModelRole role, IReadOnlyList<PassInput> inputs, bool lastLogits) => Model(role).Extend(inputs, lastLogits);

    public int RopeRegime(ModelRole role, int length) => Model(role).Config.RopeRegime(length);

    public long LiveTensors => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    public IDecodeBatch StartDecoding(ModelRole role) => new DecodeBatch(Model(role));

    CausalLanguageModel Model(ModelRole role) => role == ModelRole.Policy ? Pair.Policy : Pair.Reference;

    public void Dispose() => Pair.Dispose();
}
