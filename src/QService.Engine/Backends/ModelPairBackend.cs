namespace QService.Engine.Backends;

/// <summary>The LibTorch backend: the loaded <see cref="ModelPair"/>.</summary>
public sealed class ModelPairBackend(ModelPair pair) : IScoringBackend
{
    public ModelPair Pair { get; } = pair;

    public void WarmUp()
    {
        int[] tokens = [0, 1, 2, 3];
        Pair.Policy.ScoreNextTokens([tokens]);
        Pair.Reference.ScoreNextTokens([tokens]);
    }

    public ForwardResult[] Forward(ModelRole role, IReadOnlyList<int[]> sequences, IReadOnlyList<int> firstTargets, bool lastLogits)
    {
        var model = role == ModelRole.Policy ? Pair.Policy : Pair.Reference;
        return [.. model.ScoreTokens(sequences, firstTargets, lastLogits).Select(r => new ForwardResult(r.Logprobs, r.LastLogits))];
    }

    public void Dispose() => Pair.Dispose();
}
