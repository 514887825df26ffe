using QService.Runtime.Models;
using static TorchSharp.torch;

namespace QService.Runtime.Scoring;

/// <summary>
/// One model's running sequences while decoding (continuous batching). Each sequence owns a row ("slot") of
/// per-layer key/value storage [slots, kv_heads, capacity, head_dim], left-aligned so that a key's index is
/// its position. A step appends one token to every sequence and computes one position each, whatever their
/// lengths; sequences join (<see cref="Add"/>) and leave (<see cref="Remove"/>) between steps. Owns its
/// tensors (freed when the last sequence leaves, or on Dispose). One owner thread, like the model.
/// </summary>
public sealed class DecodeBatch(CausalLanguageModel model) : IDisposable
{
    Tensor[]? _keys, _values;
    readonly List<int> _lengths = [];

    public int Count => _lengths.Count;

    /// <summary>Tokens held by the sequence in <paramref name="slot"/>.</summary>
    public int Length(int slot) => _lengths[slot];

    /// <summary>Bytes of key/value storage held now.</summary>
    public long Bytes => _keys is null ? 0 : _keys.Concat(_values!).Sum(t => t.NumberOfElements * t.ElementSize);

    /// <summary>
    /// Adds <paramref name="copies"/> sequences that all start as <paramref name="tokens"/> (slots Count.. in
    /// order). Positions [0, cachedLength) come from <paramref name="past"/> blocks; the rest is computed once,
    /// for all copies. Returns the next token's log-probabilities (float32, whole vocabulary) and, with
    /// <paramref name="newBlockSize"/> > 0, blocks of the complete runs from cachedLength on (the caller owns them).
    /// </summary>
    public (ReadOnlyMemory<float> NextLogprobs, KvBlock[] NewBlocks) Add(int[] tokens, int cachedLength, IReadOnlyList<KvBlock> past, int copies, int newBlockSize = 0)
    {
        model.ValidateTokens([tokens], 0);
        if (copies < 1) throw new ArgumentException($"copies is {copies}; add at least one sequence");
        if (cachedLength < 0 || cachedLength >= tokens.Length || past.Sum(p => p.Length) < cachedLength - 1)
            throw new ArgumentException($"a cached length of {cachedLength} with {past.Sum(p => p.Length)} cached positions does not fit {tokens.Length} tokens");
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        int slot = Count;
        EnsureCapacity(slot + copies, tokens.Length);
        // As in Extend, the last cached position is recomputed: its output predicts the first new token.
        int pastLength = Math.Max(0, cachedLength - 1);
        for (int layer = 0; layer < _keys!.Length; layer++)
        {
            long at = 0;
            foreach (var block in past)
            {
                long n = Math.Min(block.Length, pastLength - at);
                if (n <= 0) break;
                _keys[layer][slot].narrow(1, at, n).copy_(block.Keys[layer].narrow(1, 0, n));
                _values![layer][slot].narrow(1, at, n).copy_(block.Values[layer].narrow(1, 0, n));
                at += n;
            }
        }
        var chunk = tokens[pastLength..];
        var next = NextLogprobs(new SlotPass(this, slot, [pastLength], chunk.Length), chunk.Select(t => (long)t).ToArray(), 1, chunk.Length)[0];
        _lengths.Add(tokens.Length);

        var blocks = new List<KvBlock>();
        for (int start = cachedLength; newBlockSize > 0 && start + newBlockSize <= tokens.Length; start += newBlockSize)
            blocks.Add(new KvBlock([.. _keys.Select(k => Cut(k[slot], start, newBlockSize))], [.. _values!.Select(v => Cut(v[slot], start, newBlockSize))]));
        for (int c = 1; c < copies; c++)
        {
            CopyRow(slot, slot + c, tokens.Length);
            _lengths.Add(tokens.Length);
        }
        return (next, [.. blocks]);
    }

    /// <summary>Appends tokens[s] to the sequence in slot s, for every slot; returns each one's next-token log-probabilities.</summary>
    public ReadOnlyMemory<float>[] Step(int[] tokens)
    {
        if (tokens.Length != Count) throw new ArgumentException($"a step takes one token per sequence: {Count}, not {tokens.Length}");
        if (Count == 0) return [];
        model.ValidateTokens([.. tokens.Select(t => new[] { t })], _lengths.Max());
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        EnsureCapacity(Count, _lengths.Max() + 1);
        var next = NextLogprobs(new SlotPass(this, 0, [.. _lengths], 1), [.. tokens.Select(t => (long)t)], Count, 1);
        for (int s = 0; s < Count; s++) _lengths[s]++;
        return next;
    }

    /// <summary>Removes the sequence in <paramref name="slot"/>; the last sequence moves into its slot (remove in descending slot order).</summary>
    public void Remove(int slot)
    {
        int last = Count - 1;
        if (slot != last)
        {
            using var inference = inference_mode();
            using var scope = NewDisposeScope();
            CopyRow(last, slot, _lengths[last]);
            _lengths[slot] = _lengths[last];
        }
        _lengths.RemoveAt(last);
        if (Count == 0) FreeStorage(); // an idle server gives the memory back
    }

    /// <summary>The log-softmax (float32) of the last new position of each of <paramref name="rows"/> sequences: slices of one array.</summary>
    ReadOnlyMemory<float>[] NextLogprobs(SlotPass pass, long[] ids, int rows, int newLength)
    {
        var hidden = model.Module.Hidden(tensor(ids, [rows, newLength], device: model.Device), pass);
        var last = hidden.select(1, newLength - 1);
        var logprobs = model.Module.Logits(last).to(ScalarType.Float32).log_softmax(1).cpu();
        var flat = logprobs.reshape(-1).data<float>().ToArray(); // 1-D: TorchSharp copies it in one loop, not index by index
        int vocab = (int)logprobs.shape[1];
        return [.. Enumerable.Range(0, rows).Select(r => new ReadOnlyMemory<float>(flat, r * vocab, vocab))];
    }

    static Tensor Cut(Tensor row, long start, long length)
    {
        var slice = row.narrow(1, start, length);
        return empty(slice.shape, slice.dtype, slice.device).copy_(slice).DetachFromDisposeScope();
    }

    void CopyRow(int from, int to, long length)
    {
        for (int layer = 0; layer < _keys!.Length; layer++)
        {
            _keys[layer][to].narrow(1, 0, length).copy_(_keys[layer][from].narrow(1, 0, length));
            _values![layer][to].narrow(1, 0, length).copy_(_values[layer][from].narrow(1, 0, length));
        }
    }

    /// <summary>Grows the storage (doubling) to hold <paramref name="slots"/> sequences of <paramref name="positions"/> tokens.</summary>
    void EnsureCapacity(int slots, long positions)
    {
        var config = model.Config;
        long haveSlots = _keys?[0].shape[0] ?? 0, havePositions = _keys?[0].shape[2] ?? 0;
        if (slots <= haveSlots && positions <= havePositions) return;
        long newSlots = Math.Max(slots, Math.Max(haveSlots, Math.Min(2 * haveSlots, haveSlots + 64)));
        long newPositions = positions <= havePositions ? havePositions
            : Math.Min(config.MaxPositionEmbeddings, Math.Max(positions, Math.Max(64, 2 * havePositions)));
        Tensor Grow(Tensor? old)
        {
            // Zeros, not empty: masked keys are skipped, but a NaN in uninitialised memory would still poison the softmax.
            var grown = zeros([newSlots, config.NumKeyValueHeads, newPositions, config.HeadDim], model.Dtype, model.Device);
            if (old is not null && Count > 0) grown.narrow(0, 0, Count).narrow(2, 0, havePositions).copy_(old.narrow(0, 0, Count));
            old?.Dispose();
            return grown.DetachFromDisposeScope();
        }
        _keys = [.. Enumerable.Range(0, config.NumHiddenLayers).Select(l => Grow(_keys?[l]))];
        _values = [.. Enumerable.Range(0, config.NumHiddenLayers).Select(l => Grow(_values?[l]))];
    }

    void FreeStorage()
    {
        foreach (var t in (_keys ?? []).Concat(_values ?? [])) t.Dispose();
        (_keys, _values) = (null, null);
    }

    public void Dispose()
    {
        FreeStorage();
        _lengths.Clear();
    }

    /// <summary>
    /// A forward pass over <c>lengths.Length</c> consecutive slots from <paramref name="firstSlot"/>, each with
    /// <paramref name="newLength"/> new tokens after its own past: keys and values are written straight into
    /// the storage, and attention reads each row up to the longest sequence, masked by position.
    /// </summary>
    sealed class SlotPass(DecodeBatch owner, int firstSlot, long[] lengths, long newLength) : IAttentionCache
    {
        readonly long _keysLength = lengths.Max() + newLength;

        public Tensor Positions(long count, Device device)
        {
            var positions = new long[lengths.Length * count];
            for (int b = 0; b < lengths.Length; b++)
                for (int i = 0; i < count; i++) positions[b * count + i] = lengths[b] + i;
            return tensor(positions, [lengths.Length, count], device: device);
        }

        public long SequenceLength(long count) => lengths.Max() + count;

        public Tensor? Mask(long count, int? slidingWindow, Device device)
        {
            using var scope = NewDisposeScope();
            var keyPositions = Models.Positions.Range(0, _keysLength, device).unsqueeze(0);
            // A key's index is its position; keys past a row's own length are later positions, so causality masks them.
            var allowed = CausalMask.Build(Positions(count, device), keyPositions, null, slidingWindow);
            // Additive, in the compute dtype: SDPA would otherwise convert a boolean mask again in every layer.
            using var minusInfinity = TorchSharp.ScalarExtensionMethods.ToScalar(double.NegativeInfinity);
            return zeros(allowed.shape, owner._keys![0].dtype, device).masked_fill_(allowed.logical_not(), minusInfinity).MoveToOuterDisposeScope();
        }

        public (Tensor Keys, Tensor Values) Update(int layer, Tensor keys, Tensor values)
        {
            var (storedKeys, storedValues) = (owner._keys![layer], owner._values![layer]);
            if (lengths.Length == 1)
            {
                storedKeys[firstSlot].narrow(1, lengths[0], newLength).copy_(keys[0]);
                storedValues[firstSlot].narrow(1, lengths[0], newLength).copy_(values[0]);
            }
            else
            {
                // One scatter per layer: row b's new positions lengths[b].. ([rows, new] indices; values as [rows, new, kv_heads, head_dim]).
                using var scope = NewDisposeScope();
                var rows = Models.Positions.Range(firstSlot, firstSlot + lengths.Length, keys.device).unsqueeze(1);
                var at = Positions(newLength, keys.device);
                storedKeys.index_put_(keys.transpose(1, 2), TensorIndex.Tensor(rows), TensorIndex.Colon, TensorIndex.Tensor(at));
                storedValues.index_put_(values.transpose(1, 2), TensorIndex.Tensor(rows), TensorIndex.Colon, TensorIndex.Tensor(at));
            }
            return (storedKeys.narrow(0, firstSlot, lengths.Length).narrow(2, 0, _keysLength),
                storedValues.narrow(0, firstSlot, lengths.Length).narrow(2, 0, _keysLength));
        }
    }
}
