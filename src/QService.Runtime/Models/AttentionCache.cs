using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// What a forward pass over new tokens needs to know about the tokens before them: where the new tokens sit,
/// which keys each may attend to, and the keys and values of the past, per layer. Scoring passes give each
/// sequence of a batch its own past (<see cref="Scoring.BatchedPast"/>); decoding keeps every running sequence's
/// keys and values in slots between steps (<see cref="Scoring.DecodeBatch"/>).
/// </summary>
public interface IAttentionCache
{
    /// <summary>Absolute positions of the new tokens, [batch or 1, new], int64.</summary>
    Tensor Positions(long newLength, Device device);

    /// <summary>
    /// Per row, the sequence length whose RoPE the row turns with (<see cref="ModelConfig.RopeRegime"/>: longrope's factor set, dynamic
    /// scaling's base): its positions seen so far plus the new ones, unless the pass was given a longer one.
    /// </summary>
    long[] RopeLengths(long newLength);

    /// <summary>
    /// Which keys (past, then new) each new query may attend to, [batch or 1, 1, new, keys] (true = attend); null for
    /// plain causal attention from position 0.
    /// </summary>
    Tensor? Mask(long newLength, int? slidingWindow, Device device);

    /// <summary>Adds this layer's keys and values of the new tokens and returns the full ones to attend over.</summary>
    (Tensor Keys, Tensor Values) Update(int layer, Tensor keys, Tensor values);
}

/// <summary>Causal masks from positions.</summary>
public static class CausalMask
{
    /// <summary>
    /// [batch or 1, 1, queries, keys]: a query attends to a key at the same or an earlier position, within the
    /// sliding window if there is one, and only to valid keys (padding in a batch of different pasts is not).
    /// </summary>
    public static Tensor Build(Tensor queryPositions, Tensor keyPositions, Tensor? keyValid, int? slidingWindow)
    {
        using var scope = NewDisposeScope();
        var q = queryPositions.unsqueeze(-1); // [b, n, 1]
        var k = keyPositions.unsqueeze(-2);   // [b, 1, k]
        var allowed = k <= q;
        if (slidingWindow is int w)
        {
            using var window = TorchSharp.ScalarExtensionMethods.ToScalar(w);
            allowed = allowed.logical_and(q.add(k.neg(), Scalars.One).lt(window));
        }
        if (keyValid is not null) allowed = allowed.logical_and(keyValid.unsqueeze(-2));
        return allowed.unsqueeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>The mask of a pass with or without a cache (see <see cref="Fresh"/>).</summary>
    public static Tensor? Of(IAttentionCache? cache, long length, int? slidingWindow, Device device) =>
        cache is null ? Fresh(length, slidingWindow, device) : cache.Mask(length, slidingWindow, device);

    /// <summary>One mask per layer for the given per-layer windows, each distinct one made once per pass.</summary>
    public static Tensor?[] PerLayer(int?[] windows, IAttentionCache? cache, long length, Device device)
    {
        var masks = windows.Distinct().ToDictionary(w => w ?? -1, w => Of(cache, length, w, device));
        return [.. windows.Select(w => masks[w ?? -1])];
    }

    /// <summary>The mask for a fresh pass from position 0: null (plain causal) unless the sliding window bites.</summary>
    public static Tensor? Fresh(long length, int? slidingWindow, Device device)
    {
        if (slidingWindow is not int w || length <= w) return null;
        using var scope = NewDisposeScope();
        var positions = Models.Positions.Range(0, length, device).unsqueeze(0);
        return Build(positions, positions, null, slidingWindow).MoveToOuterDisposeScope();
    }
}
