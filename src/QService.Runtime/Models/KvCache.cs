using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// Keys and values of past positions, per layer, shaped [batch, kv_heads, past, head_dim]. Extending a
/// sequence then costs only its new tokens. The cache owns its tensors: they are detached from every
/// dispose scope and freed when replaced or when the cache is disposed.
/// </summary>
public sealed class KvCache : IAttentionCache, IDisposable
{
    readonly Tensor?[] _keys;
    readonly Tensor?[] _values;

    public KvCache(int layers)
    {
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    /// <summary>Number of positions already cached.</summary>
    public long Length => _keys[^1]?.shape[2] ?? 0;

    public Tensor Positions(long newLength, Device device) => Models.Positions.Range(Length, Length + newLength, device).unsqueeze(0);

    public long SequenceLength(long newLength) => Length + newLength;

    public Tensor? Mask(long newLength, int? slidingWindow, Device device)
    {
        long past = Length;
        if (past == 0) return CausalMask.Fresh(newLength, slidingWindow, device);
        using var scope = NewDisposeScope();
        var queries = Models.Positions.Range(past, past + newLength, device).unsqueeze(0);
        var keys = Models.Positions.Range(0, past + newLength, device).unsqueeze(0);
        return CausalMask.Build(queries, keys, null, slidingWindow).MoveToOuterDisposeScope();
    }

    /// <summary>Appends this step's keys and values for one layer and returns the full ones (owned by the cache).</summary>
    public (Tensor Keys, Tensor Values) Update(int layer, Tensor keys, Tensor values)
    {
        _keys[layer] = Append(_keys[layer], keys);
        _values[layer] = Append(_values[layer], values);
        return (_keys[layer]!, _values[layer]!);
    }

    static Tensor Append(Tensor? old, Tensor next)
    {
        var joined = old is null ? next.clone() : cat([old, next], 2);
        joined.DetachFromDisposeScope();
        old?.Dispose();
        return joined;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
        Array.Clear(_keys);
        Array.Clear(_values);
    }
}
