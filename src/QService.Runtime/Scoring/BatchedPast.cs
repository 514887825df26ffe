using QService.Runtime.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Scoring;

/// <summary>
/// A batch whose sequences each continue their own past: sequence b has pastLengths[b] cached positions
/// (its keys and values left-aligned in [batch, kv_heads, maxPast + maxNew, head_dim] tensors, then padding,
/// then room for the new tokens' own keys and values) and
/// newLengths[b] new tokens (right-padded). Queries see their own valid past and the new tokens up to
/// themselves. Keeps the new tokens' keys and values in <paramref name="keepIn"/> (when given) so that they can be cached. Row b's
/// RoPE is that of a sequence of ropeLengths[b] tokens.
/// </summary>
internal sealed class BatchedPast(Tensor?[] pastKeys, Tensor?[] pastValues, long[] pastLengths, long[] newLengths, long[] ropeLengths, DisposeScope? keepIn)
    : IAttentionCache
{
    readonly long _maxPast = pastLengths.Max();
    /// <summary>Each layer's keys and values of the new tokens, [batch, kv_heads, new, head_dim], when kept (a layer's are set once it has run).</summary>
    public Tensor[] NewKeys { get; } = new Tensor[pastKeys.Length];
    public Tensor[] NewValues { get; } = new Tensor[pastKeys.Length];

    public Tensor Positions(long newLength, Device device) => Models.Positions.Continuing(pastLengths, newLengths, newLength, device);

    public long[] RopeLengths(long newLength) => ropeLengths;

    public Tensor? Mask(long newLength, int? slidingWindow, Device device)
    {
        if (_maxPast == 0) return CausalMask.Fresh(newLength, slidingWindow, device);
        using var scope = NewDisposeScope();
        int batch = pastLengths.Length;
        long keys = _maxPast + newLength;
        var keyPositions = new long[batch * keys];
        var valid = new bool[batch * keys];
        for (int b = 0; b < batch; b++)
        {
            for (long j = 0; j < _maxPast; j++) { keyPositions[b * keys + j] = j; valid[b * keys + j] = j < pastLengths[b]; }
            for (long m = 0; m < newLength; m++)
            {
                keyPositions[b * keys + _maxPast + m] = pastLengths[b] + m;
                valid[b * keys + _maxPast + m] = m < newLengths[b];
            }
        }
        var mask = CausalMask.Build(Positions(newLength, device), tensor(keyPositions, [batch, keys], device: device),
            tensor(valid, [batch, keys], device: device), slidingWindow);
        return mask.MoveToOuterDisposeScope();
    }

    public (Tensor Keys, Tensor Values) Update(int layer, Tensor keys, Tensor values)
    {
        if (keepIn != null)
        {
            // Kept past this layer's scope: the caller cuts them into cache blocks after the pass.
            NewKeys[layer] = keys.MoveToOtherDisposeScope(keepIn);
            NewValues[layer] = values.MoveToOtherDisposeScope(keepIn);
        }
        if (pastKeys[layer] is not { } pk) return (keys, values);
        var pv = pastValues[layer]!;
        pk.narrow(2, _maxPast, keys.shape[2]).copy_(keys);
        pv.narrow(2, _maxPast, values.shape[2]).copy_(values);
        return (pk, pv);
    }
}
