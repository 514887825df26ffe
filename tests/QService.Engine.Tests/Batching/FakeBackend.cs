using QService.Engine.Backends;
using QService.Runtime.Scoring;

namespace QService.Engine.Tests.Batching;

/// <summary>
/// Answers log-prob = token id (+ 0.25 per policy index) under a policy and −id under the reference (unless <see cref="LogProb"/>
/// says otherwise), and for the next token <see cref="FakeDecodeBatch.Next"/> over <see cref="Vocab"/> tokens; records every call.
/// </summary>
internal sealed class FakeBackend : IScoringBackend
{
    public List<(ModelRole Role, int[][] Sequences)> Calls { get; } = [];
    public Func<int, Exception?> FailOnCall { get; set; } = _ => null;
    public bool Disposed { get; private set; }
    /// <summary>Tokens of the next-token distributions, the decoder's ones included.</summary>
    public int Vocab { get; init; } = FakeDecodeBatch.Vocab;
    /// <summary>The log-probability of a scored token under a model.</summary>
    public Func<ModelRole, int, float> LogProb { get; set; } = (role, token) => role.IsReference ? -token : token + 0.25f * role.PolicyIndex;
    public IReadOnlyList<string> PolicyNames { get; init; } = ["policy"];
    /// <summary>
    /// Log-probabilities shift with the pass's size and with how much of a sequence came from the cache, as float results do
    /// in the last bits with the batch a sequence shares (here by 1e-3 per sequence in the pass and 1e-4 per cached token).
    /// </summary>
    public bool PassNoise { get; init; }
    /// <summary>The next token's logits after a sequence under a model.</summary>
    public Func<ModelRole, IReadOnlyList<int>, float[]>? NextLogits { get; set; }

    /// <summary>The RoPE regime of a pass over a length under a model: 0 (one RoPE) unless a test says otherwise.</summary>
    public Func<ModelRole, int, int> Regime { get; set; } = (_, _) => 0;

    public int RopeRegime(ModelRole role, int length) => Regime(role, length);

    public void WarmUp() { }

    public PassResult[] Forward(ModelRole role, IReadOnlyList<PassInput> inputs, bool lastLogits)
    {
        lock (Calls) Calls.Add((role, [.. inputs.Select(i => i.Tokens)]));
        lock (Inputs) Inputs.Add((role, [.. inputs]));
        if (FailOnCall(Calls.Count) is { } error) throw error;
        return [.. inputs.Select(i => new PassResult(
            i.Tokens[i.FirstTarget..].Select(t => LogProb(role, t) + (PassNoise ? 1e-3f * inputs.Count + 1e-4f * i.PastLength : 0)).ToArray(),
            lastLogits ? NextLogits?.Invoke(role, i.Tokens) ?? FakeDecodeBatch.Next(role, i.Tokens, Vocab) : null,
            NewBlocks(i)))];
    }

    /// <summary>A fake block per complete block from the cached length on, as the real backend returns them.</summary>
    internal List<ICachedBlock> NewBlocks(PassInput input)
    {
        var blocks = new List<ICachedBlock>();
        if (input.NewBlockSize > 0)
            for (int start = input.CachedLength; start + input.NewBlockSize <= input.Tokens.Length; start += input.NewBlockSize)
                blocks.Add(new FakeState(this));
        return blocks;
    }

    public List<(ModelRole Role, PassInput[] Inputs)> Inputs { get; } = [];
    public int LiveStates;

    public long LiveTensors => LiveStates;

    public IDecodeBatch StartDecoding(ModelRole role) => new FakeDecodeBatch(role, this);

    /// <summary>Called before each decode step with the number of running sequences (e.g. to slow steps down, or fail one).</summary>
    public Action<int> OnStep { get; set; } = _ => { };
    public int Steps;
    /// <summary>Starts per decode-batch admission (policy side): how many prompts each prefill pass computed.</summary>
    public List<int> Admissions { get; } = [];

    public void Dispose() => Disposed = true;
}

internal sealed class FakeState : ICachedBlock
{
    readonly FakeBackend _owner;
    bool _disposed;
    public FakeState(FakeBackend owner) { _owner = owner; Interlocked.Increment(ref owner.LiveStates); }
    public long Bytes => 100;
    public void Dispose()
    {
        Assert.False(_disposed, "a cached state was disposed twice");
        _disposed = true;
        Interlocked.Decrement(ref _owner.LiveStates);
    }
}

/// <summary>
/// A fake decoding model over the owner's vocabulary (<see cref="Vocab"/> tokens unless set) whose next-token distribution is a
/// fixed function of the whole sequence (so any batching gives the same numbers); the reference's is another.
/// </summary>
internal sealed class FakeDecodeBatch(ModelRole role, FakeBackend owner) : IDecodeBatch
{
    public const int Vocab = 6;
    readonly List<List<int>> _sequences = [];

    public int Count => _sequences.Count;

    public static float[] Next(ModelRole role, IReadOnlyList<int> tokens, int vocab = Vocab)
    {
        int sum = tokens.Sum() + tokens.Count * (role.IsReference ? 2 : 1 + 3 * role.PolicyIndex);
        double[] logits = [.. Enumerable.Range(0, vocab).Select(v => ((sum + 3 * v) % 7) / 2.0)];
        double lse = Math.Log(logits.Sum(Math.Exp));
        return [.. logits.Select(l => (float)(l - lse))];
    }

    public DecodeAdmission[] Add(IReadOnlyList<DecodeStart> starts)
    {
        if (!role.IsReference) lock (owner.Admissions) owner.Admissions.Add(starts.Count);
        // The real batch's slot order: every start's first sequence, then the further copies.
        foreach (var start in starts) _sequences.Add([.. start.Input.Tokens]);
        foreach (var start in starts)
            for (int c = 1; c < start.Copies; c++) _sequences.Add([.. start.Input.Tokens]);
        return [.. starts.Select(s => new DecodeAdmission(Next(role, s.Input.Tokens, owner.Vocab), owner.NewBlocks(s.Input)))];
    }

    public ReadOnlyMemory<float>[] Step(int[] tokens)
    {
        if (!role.IsReference)
        {
            owner.OnStep(_sequences.Count);
            Interlocked.Increment(ref owner.Steps);
        }
        for (int s = 0; s < tokens.Length; s++) _sequences[s].Add(tokens[s]);
        return [.. _sequences.Select(s => new ReadOnlyMemory<float>(Next(role, s, owner.Vocab)))];
    }

    public void Remove(int slot)
    {
        _sequences[slot] = _sequences[^1];
        _sequences.RemoveAt(_sequences.Count - 1);
    }

    public void Dispose() => _sequences.Clear();
}
