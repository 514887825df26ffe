using QService.Runtime.Scoring;

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

    public ForwardResult[] Forward(ModelRole role, IReadOnlyList<ForwardInput> inputs, bool lastLogits)
    {
        var model = role == ModelRole.Policy ? Pair.Policy : Pair.Reference;
        // Extend takes LibTorch's plain causal path by itself when nothing is cached and no blocks are asked for.
        var extended = model.Extend([.. inputs.Select(i => new ExtendInput(i.Tokens, i.FirstTarget, i.CachedLength,
            [.. (i.Past ?? []).Select(p => ((CachedKv)p).Block)], i.NewBlockSize))], lastLogits);
        return [.. extended.Select(r => new ForwardResult(r.Logprobs, r.LastLogits, [.. r.NewBlocks.Select(b => new CachedKv(b))]))];
    }

    public long LiveTensors => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    public IDecodeBatch StartDecoding(ModelRole role) => new Decoding(new DecodeBatch(role == ModelRole.Policy ? Pair.Policy : Pair.Reference));

    public void Dispose() => Pair.Dispose();

    sealed class Decoding(DecodeBatch batch) : IDecodeBatch
    {
        public int Count => batch.Count;

        public DecodeAdmission[] Add(IReadOnlyList<DecodeStart> starts) =>
            [.. batch.Add([.. starts.Select(s => new Runtime.Scoring.DecodeStart(s.Input.Tokens, s.Input.CachedLength,
                    [.. (s.Input.Past ?? []).Select(p => ((CachedKv)p).Block)], s.Copies, s.Input.NewBlockSize))])
                .Select(r => new DecodeAdmission(r.NextLogprobs, [.. r.NewBlocks.Select(b => new CachedKv(b))]))];

        public ReadOnlyMemory<float>[] Step(int[] tokens) => batch.Step(tokens);
        public void Remove(int slot) => batch.Remove(slot);
        public void Dispose() => batch.Dispose();
    }

    /// <summary>A block of one model's keys and values, as the engine's prefix cache holds it.</summary>
    sealed class CachedKv(KvBlock block) : ICachedState
    {
        public KvBlock Block { get; } = block;
        public long Bytes => Block.Bytes;
        public void Dispose() => Block.Dispose();
    }
}
