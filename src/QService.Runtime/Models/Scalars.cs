using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// Scalars that do not leak. TorchSharp turns a number passed where a Scalar is expected into a native Scalar
/// that no dispose scope tracks, and so does <c>a + b</c> or <c>a.add_(b)</c> on tensors (for alpha = 1): it
/// lives until the garbage collector finalises it. Hundreds per forward pass, interleaved with the pass's
/// large buffers, fragment the native heap until the next collection (resident memory grew by 0.8 MB a pass).
/// So the forward path adds and subtracts with <see cref="One"/> and makes its other Scalars here.
/// </summary>
public static class Scalars
{
    /// <summary>alpha = 1 for add/sub, made once for the process.</summary>
    public static readonly Scalar One = 1.ToScalar();
}

/// <summary>Token positions as int64 tensors, with their Scalars disposed (see <see cref="Scalars"/>).</summary>
public static class Positions
{
    /// <summary>
    /// [rows, count] int64: row b's new tokens continue its past, at pastLengths[b] + i; positions past its
    /// newLengths[b] (padding) repeat its last real one, as any valid position will do for what is never read.
    /// </summary>
    public static Tensor Continuing(long[] pastLengths, long[] newLengths, long count, Device device)
    {
        var positions = new long[pastLengths.Length * count];
        for (int b = 0; b < pastLengths.Length; b++)
            for (int i = 0; i < count; i++) positions[b * count + i] = pastLengths[b] + Math.Min(i, newLengths[b] - 1);
        return tensor(positions, [pastLengths.Length, count], device: device);
    }

    /// <summary>The new tokens' positions: after the cache's past, or from 0 in a fresh pass.</summary>
    public static Tensor Of(IAttentionCache? cache, long length, Device device) =>
        cache?.Positions(length, device) ?? Range(0, length, device).unsqueeze(0);

    /// <summary>Each row's RoPE length (<see cref="IAttentionCache.RopeLengths"/>); a fresh pass from position 0 has one row's worth.</summary>
    public static long[] RopeLengths(IAttentionCache? cache, long length) => cache?.RopeLengths(length) ?? [length];

    /// <summary>[start, stop) as int64 on the device.</summary>
    public static Tensor Range(long start, long stop, Device device)
    {
        using var first = start.ToScalar();
        using var end = stop.ToScalar();
        return arange(first, end, ScalarType.Int64, device);
    }
}
