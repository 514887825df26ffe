using QService.Runtime.Models;
using static TorchSharp.torch;

namespace QService.Runtime.Scoring;

/// <summary>
/// One model's running sequences while decoding (continuous batching). Each sequence owns a row ("slot") of
/// per-layer key/value storage [slots, kv_heads, capacity, head_dim], left-aligned so that a key's index is
/// its position. A step appends one token to every sequence and computes one position each, whatever their
/// lengths; sequences join (<see cref="Add"/>) and leave (<see cref="Remove"/>) between steps. Owns its
/// tensors (freed when the last sequence leaves, or on Dispose). One owner thread, like the model.
/// A sequence whose next step changes its RoPE regime (<see cref="ModelConfig.RopeRegime"/>: longrope passing
/// original_max_position_embeddings) has its keys and values recomputed under the new one first, as HF's Phi3
/// generate() drops its cache there: every step then equals a fresh pass over the sequence.
/// </summary>
public sealed class DecodeBatch(CausalLanguageModel model) : IDecodeBatch
{
    Tensor[]? _keys, _values;
    /// <summary>Each slot's tokens, for the recomputation at a change of RoPE regime.</summary>
    readonly List<List<int>> _tokens = [];

    public int Count => _tokens.Count;

    /// <summary>Tokens held by the sequence in <paramref name="slot"/>.</summary>
    public int Length(int slot) => _tokens[slot].Count;

    /// <summary>Bytes of key/value storage held now.</summary>
    public long Bytes => _keys is null ? 0 : _keys.Concat(_values!).Sum(t => t.NumberOfElements * t.ElementSize);

    /// <inheritdoc/>
    public DecodeAdmission[] Add(IReadOnlyList<DecodeStart> starts)
    {
        if (starts.Count == 0) return [];
        var inputs = starts.Select(s => s.Input).ToArray();
        model.ValidateTokens([.. inputs.Select(i => i.Tokens)], 0);
        for (int s = 0; s < starts.Count; s++)
        {
            if (starts[s].Copies < 1) throw new ArgumentException($"copies is {starts[s].Copies}; add at least one sequence");
            inputs[s].ThrowIfPastDoesNotFit(s);
        }
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        int first = Count;
        EnsureCapacity(first + starts.Sum(s => s.Copies), inputs.Max(i => i.Tokens.Length));
        long[] pastLengths = [.. inputs.Select(i => (long)i.PastLength)];
        for (int s = 0; s < inputs.Length; s++) KvBlock.CopyIn(inputs[s].PastBlocks, pastLengths[s], _keys!, _values!, first + s);
        int[][] chunks = [.. inputs.Select(i => i.ComputedTokens)];
        long[] ropeLengths = [.. inputs.Select(i => (long)i.RopeLengthOrOwn)];
        var next = NextLogprobs(new SlotPass(this, first, pastLengths, [.. chunks.Select(c => (long)c.Length)], ropeLengths), chunks);
        _tokens.AddRange(inputs.Select(i => i.Tokens.ToList()));

        // A slot holds position p at index p.
        var results = inputs.Select((input, s) => new DecodeAdmission(next[s], KvBlock.CutOut(input, _keys!, _values!, first + s, firstPosition: 0))).ToArray();
        for (int s = 0; s < inputs.Length; s++)
            for (int c = 1; c < starts[s].Copies; c++)
            {
                CopyRow(first + s, Count, inputs[s].Tokens.Length);
                _tokens.Add(inputs[s].Tokens.ToList());
            }
        return results;
    }

    /// <inheritdoc/>
    public ReadOnlyMemory<float>[] Step(int[] tokens)
    {
        if (tokens.Length != Count) throw new ArgumentException($"a step takes one token per sequence: {Count}, not {tokens.Length}");
        if (Count == 0) return [];
        long[] lengths = [.. _tokens.Select(t => (long)t.Count)];
        model.ValidateTokens([.. tokens.Select(t => new[] { t })], lengths.Max());
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        EnsureCapacity(Count, lengths.Max() + 1);
        for (int s = 0; s < Count; s++)
            if (model.Config.RopeRegime((int)lengths[s]) != model.Config.RopeRegime((int)lengths[s] + 1)) RecomputeForLength(s, lengths[s] + 1);
        var next = NextLogprobs(new SlotPass(this, 0, lengths, [.. tokens.Select(_ => 1L)]), [.. tokens.Select(t => new[] { t })]);
        for (int s = 0; s < Count; s++) _tokens[s].Add(tokens[s]);
        return next;
    }

    /// <summary>
    /// Rewrites the keys and values of the sequence in <paramref name="slot"/> as a pass over it turns them in a sequence of
    /// <paramref name="ropeLength"/> tokens: one fresh pass over the slot's tokens, its output unused.
    /// </summary>
    void RecomputeForLength(int slot, long ropeLength)
    {
        using var scope = NewDisposeScope();
        int[][] chunk = [[.. _tokens[slot]]];
        model.FlatHidden(chunk, new SlotPass(this, slot, [0], [chunk[0].Length], [ropeLength]));
    }

    /// <summary>Removes the sequence in <paramref name="slot"/>; the last sequence moves into its slot (remove in descending slot order).</summary>
    public void Remove(int slot)
    {
        int last = Count - 1;
        if (slot != last)
        {
            using var inference = inference_mode();
            using var scope = NewDisposeScope();
            CopyRow(last, slot, _tokens[last].Count);
            _tokens[slot] = _tokens[last];
        }
        _tokens.RemoveAt(last);
        if (Count == 0) FreeStorage(); // an idle server gives the memory back
    }

    /// <summary>The log-softmax (float32) of each row's last new position, from one pass over the (right-padded) chunks: slices of one array.</summary>
    ReadOnlyMemory<float>[] NextLogprobs(SlotPass pass, int[][] chunks)
    {
        var logprobs = model.LastLogits(model.FlatHidden(chunks, pass), chunks).log_softmax(1).cpu();
        var flat = logprobs.reshape(-1).data<float>().ToArray(); // 1-D: TorchSharp copies it in one loop, not index by index
        int vocab = (int)logprobs.shape[1];
        return [.. Enumerable.Range(0, chunks.Length).Select(r => new ReadOnlyMemory<float>(flat, r * vocab, vocab))];
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
        _tokens.Clear();
    }

    /// <summary>
    /// A forward pass over consecutive slots from <paramref name="firstSlot"/>: row b adds newLengths[b] tokens
    /// (right-padded to the longest) after its pastLengths[b]. Keys and values of real tokens are written straight
    /// into the storage (padding is never written, and its positions repeat the row's last real one), and
    /// attention reads each row up to the longest sequence, masked by position. RoPE turns row b as in a sequence of
    /// ropeLengths[b] tokens (by default its own).
    /// </summary>
    sealed class SlotPass(DecodeBatch owner, int firstSlot, long[] pastLengths, long[] newLengths, long[]? ropeLengths = null) : IAttentionCache
    {
        readonly long _keysLength = pastLengths.Zip(newLengths, (p, n) => p + n).Max();

        public Tensor Positions(long count, Device device) => Models.Positions.Continuing(pastLengths, newLengths, count, device);

        public long[] RopeLengths(long count) => ropeLengths ?? [.. pastLengths.Zip(newLengths, (p, n) => p + n)];

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
            int rows = pastLengths.Length;
            long width = keys.shape[2];
            if (rows == 1)
            {
                storedKeys[firstSlot].narrow(1, pastLengths[0], newLengths[0]).copy_(keys[0].narrow(1, 0, newLengths[0]));
                storedValues[firstSlot].narrow(1, pastLengths[0], newLengths[0]).copy_(values[0].narrow(1, 0, newLengths[0]));
            }
            else
            {
                // One scatter per layer of the real tokens' keys and values: row b's position pastLengths[b] + i.
                using var scope = NewDisposeScope();
                var (flat, slots, positions) = (new List<long>(), new List<long>(), new List<long>());
                for (int b = 0; b < rows; b++)
                    for (int i = 0; i < newLengths[b]; i++) { flat.Add(b * width + i); slots.Add(firstSlot + b); positions.Add(pastLengths[b] + i); }
                var device = keys.device;
                var (slotIndex, positionIndex) = (TensorIndex.Tensor(tensor(slots.ToArray(), device: device)),
                    TensorIndex.Tensor(tensor(positions.ToArray(), device: device)));
                Tensor Real(Tensor t) => flat.Count == rows * width
                    ? t.transpose(1, 2).reshape(rows * width, t.shape[1], t.shape[3])
                    : t.transpose(1, 2).reshape(rows * width, t.shape[1], t.shape[3]).index_select(0, tensor(flat.ToArray(), device: device));
                storedKeys.index_put_(Real(keys), slotIndex, TensorIndex.Colon, positionIndex);
                storedValues.index_put_(Real(values), slotIndex, TensorIndex.Colon, positionIndex);
            }
            return (storedKeys.narrow(0, firstSlot, rows).narrow(2, 0, _keysLength),
                storedValues.narrow(0, firstSlot, rows).narrow(2, 0, _keysLength));
        }
    }
}

