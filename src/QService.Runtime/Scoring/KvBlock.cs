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

    public void Dispose()
    {
        foreach (var t in Keys) t.Dispose();
        foreach (var t in Values) t.Dispose();
    }
}
