using static TorchSharp.torch;

namespace QService.Runtime.Scoring;

/// <summary>
/// The keys and values of one run of positions of one model, per layer [kv_heads, length, head_dim]: what a
/// prefix cache holds as an <see cref="ICachedBlock"/>. It owns its tensors (detached from every dispose
/// scope) until disposed.
/// </summary>
internal sealed class KvBlock : ICachedBlock
{
    internal Tensor[] Keys { get; }
    internal Tensor[] Values { get; }
    public int Length { get; }
    public long Bytes { get; }

    internal KvBlock(Tensor[] keys, Tensor[] values)
    {
        Keys = keys;
        Values = values;
        Length = (int)keys[0].shape[1];
        Bytes = keys.Concat(values).Sum(t => t.NumberOfElements * t.ElementSize);
    }

    /// <summary>The runtime's block behind a handle; only the runtime makes them, so anything else is a caller's bug.</summary>
    internal static KvBlock Of(ICachedBlock block) =>
        block as KvBlock ?? throw new ArgumentException($"a cached block of type {block.GetType().Name} was not made by this runtime");

    /// <summary>
    /// Copies positions [0, <paramref name="length"/>) of a chain of blocks into row <paramref name="row"/> of a
    /// pass's per-layer storage [rows, kv_heads, positions, head_dim], at index = position: each block once,
    /// straight into its place. Scoring and decoding passes read their cached past this way.
    /// </summary>
    internal static void CopyIn(IEnumerable<KvBlock> blocks, long length, IReadOnlyList<Tensor> keys, IReadOnlyList<Tensor> values, long row)
    {
        long at = 0;
        foreach (var block in blocks)
        {
            long n = Math.Min(block.Length, length - at);
            if (n <= 0) break;
            for (int layer = 0; layer < keys.Count; layer++)
            {
                keys[layer][row].narrow(1, at, n).copy_(block.Keys[layer].narrow(1, 0, n));
                values[layer][row].narrow(1, at, n).copy_(block.Values[layer].narrow(1, 0, n));
            }
            at += n;
        }
    }

    /// <summary>
    /// New blocks for the complete runs of input.NewBlockSize positions from input.CachedLength on, copied out of
    /// row <paramref name="row"/> of a pass's per-layer storage whose index 0 holds <paramref name="firstPosition"/>.
    /// </summary>
    internal static ICachedBlock[] CutOut(PassInput input, IReadOnlyList<Tensor> keys, IReadOnlyList<Tensor> values, long row, long firstPosition)
    {
        int size = input.NewBlockSize;
        var blocks = new List<ICachedBlock>();
        for (int start = input.CachedLength; size > 0 && start + size <= input.Tokens.Length; start += size)
        {
            long at = start - firstPosition;
            Tensor Cut(Tensor t)
            {
                var slice = t[row].narrow(1, at, size);
                return empty(slice.shape, slice.dtype, slice.device).copy_(slice).DetachFromDisposeScope(); // one copy, contiguous
            }
            blocks.Add(new KvBlock([.. keys.Select(Cut)], [.. values.Select(Cut)]));
        }
        return [.. blocks];
    }

    public void Dispose()
    {
        foreach (var t in Keys) t.Dispose();
        foreach (var t in Values) t.Dispose();
    }
}
