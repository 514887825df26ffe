using QService.Runtime.Scoring;

namespace QService.Engine.Backends;

/// <summary>The LibTorch backend: the loaded <see cref="ModelPair"/> (its policies and reference), whose models take the seam's records as they are.</summary>
public sealed class ModelPairBackend(ModelPair pair) : IScoringBackend
{
    public ModelPair Pair { get; } = pair;

    public void WarmUp()
    {
        int[] tokens = [0, 1, 2, 3];
        foreach (var policy in Pair.Policies) policy.Model.ScoreNextTokens([tokens]);
        Pair.Reference.ScoreNextTokens([tokens]);
    }

    // Extend takes LibTorch's plain causal path by itself when nothing is cached and no blocks are asked for.
    public PassResult[] Forward(ModelRole role, IReadOnlyList<PassInput> inputs, bool lastLogits) => Model(role).Extend(inputs, lastLogits);

    public int RopeRegime(ModelRole role, int length) => Model(role).Config.RopeRegime(length);

    public long LiveTensors => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    public IDecodeBatch StartDecoding(ModelRole role) => new DecodeBatch(Model(role));

    public IReadOnlyList<string> PolicyNames { get; } = [.. pair.Policies.Select(p => p.Name)];

    CausalLanguageModel Model(ModelRole role) => role.IsReference ? Pair.Reference : Pair.Policies[role.PolicyIndex].Model;

    public void Dispose() => Pair.Dispose();
}
