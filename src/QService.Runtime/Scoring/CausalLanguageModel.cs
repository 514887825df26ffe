using QService.Runtime.Adapters;
using QService.Runtime.Loading;
using QService.Runtime.Models;
using QService.Runtime.Torch;
using static TorchSharp.torch;

namespace QService.Runtime.Scoring;

/// <summary>How to load a model.</summary>
/// <param name="Device">"auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".</param>
/// <param name="Dtype">compute dtype: float32 (default; what CPUs want), bfloat16 or float16 (GPU users).</param>
/// <param name="LogitChunkBytes">upper bound on the float32 logits held at once while scoring (rows × vocab × 4 bytes).</param>
public sealed record ModelLoadOptions(string Device = "auto", string Dtype = "float32", long LogitChunkBytes = 64L * 1024 * 1024);

/// <summary>Next-token log-probabilities of one sequence: entry t is log p(token t+1 | tokens 0..t).</summary>
public sealed record SequenceLogprobs(float[] Logprobs, float[]? LastLogits);

/// <summary>
/// A loaded causal language model, made for scoring. Every call runs under inference mode inside a
/// dispose scope; only managed arrays leave it. Not thread-safe: one owner thread drives a model.
/// A model made by <see cref="LoadAdapter"/> shares its base's module and switches its adapter on around each of its
/// forwards (the base, run in between, sees none), so one owner thread must drive both.
/// </summary>
public sealed class CausalLanguageModel : IDisposable
{
    readonly CausalLm _module;
    readonly PeftAdapter? _adapter;
    /// <summary>False for a <see cref="Share"/>d model: another one frees the module.</summary>
    readonly bool _ownsModule;

    public ModelConfig Config => _module.Config;
    public Device Device { get; }
    public ScalarType Dtype { get; }
    public string Name { get; }
    public string DeviceReason { get; }
    readonly long _logitChunkBytes;

    CausalLanguageModel(CausalLm module, Device device, ScalarType dtype, string name, string deviceReason, long logitChunkBytes,
        PeftAdapter? adapter = null, bool ownsModule = true)
    {
        _logitChunkBytes = logitChunkBytes;
        _adapter = adapter;
        _ownsModule = ownsModule && adapter is null;
        _module = module;
        Device = device;
        Dtype = dtype;
        Name = name;
        DeviceReason = deviceReason;
        _module.eval();
    }

    /// <summary>Loads config.json and safetensors weights from a HuggingFace model folder.</summary>
    /// <param name="progress">called as the weights are read, with (bytes read, bytes in all)</param>
    public static CausalLanguageModel Load(string folder, ModelLoadOptions? options = null, Action<long, long>? progress = null)
    {
        options ??= new ModelLoadOptions();
        if (!Directory.Exists(folder)) throw new CheckpointException($"{folder}: model folder not found");
        var config = ModelConfig.Load(folder);
        var (device, reason) = TorchEnvironment.SelectDevice(options.Device);
        var dtype = TorchEnvironment.ParseDtype(options.Dtype);
        var checkpoint = Checkpoint.Open(folder);
        checkpoint.Progress = progress;
        var module = ModelFactory.Create(config, dtype, device);
        try { module.LoadWeights(checkpoint); }
        catch { module.Dispose(); throw; }
        return new CausalLanguageModel(module, device, dtype, Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/')), reason, options.LogitChunkBytes);
    }

    /// <summary>A model with random weights (benchmarks, tests, the built-in default pair).</summary>
    public static CausalLanguageModel CreateRandom(ModelConfig config, long seed, ModelLoadOptions? options = null, string name = "random")
    {
        options ??= new ModelLoadOptions();
        var (device, reason) = TorchEnvironment.SelectDevice(options.Device);
        var dtype = TorchEnvironment.ParseDtype(options.Dtype);
        var module = ModelFactory.Create(config, dtype, device);
        module.InitializeRandom(seed);
        return new CausalLanguageModel(module, device, dtype, name, reason, options.LogitChunkBytes);
    }

    /// <summary>
    /// The PEFT LoRA adapter in <paramref name="adapterFolder"/> over <paramref name="baseModel"/>: a model that runs the base's
    /// module (its weights not copied) with the adapter's low-rank updates and replacements on. Disposing it frees only the
    /// adapter's tensors; the base must outlive it. A folder or config the runtime cannot serve exactly is a CheckpointException.
    /// </summary>
    public static CausalLanguageModel LoadAdapter(CausalLanguageModel baseModel, string adapterFolder, string? name = null)
    {
        if (baseModel._adapter is not null) throw new ArgumentException($"{baseModel.Name} is itself an adapter model; load the adapter over its base");
        if (!Directory.Exists(adapterFolder)) throw new CheckpointException($"{adapterFolder}: adapter folder not found");
        var adapter = PeftAdapter.Load(baseModel._module, adapterFolder, baseModel.Dtype, baseModel.Device);
        return new CausalLanguageModel(baseModel._module, baseModel.Device, baseModel.Dtype,
            name ?? Path.GetFileName(Path.GetFullPath(adapterFolder).TrimEnd('/')), baseModel.DeviceReason, baseModel._logitChunkBytes, adapter);
    }

    /// <summary>
    /// The same plain model under another name, running the same module (e.g. a policy served from the reference's own folder:
    /// one copy of the weights). Disposing it frees nothing; <paramref name="model"/> must outlive it.
    /// </summary>
    public static CausalLanguageModel Share(CausalLanguageModel model, string name)
    {
        if (model._adapter is not null) throw new ArgumentException($"{model.Name} is an adapter model; load the adapter again over its base instead");
        return new CausalLanguageModel(model._module, model.Device, model.Dtype, name, model.DeviceReason, model._logitChunkBytes, ownsModule: false);
    }

    /// <summary>The adapter this model runs over its base, or null for a plain checkpoint.</summary>
    public AdapterDescription? Adapter => _adapter?.Description;

    /// <summary>The same weights in another compute dtype, e.g. to measure a reduced-precision mode against float32.</summary>
    public CausalLanguageModel ConvertTo(string dtype)
    {
        if (_adapter is not null) throw new InvalidOperationException($"{Name} is an adapter model: convert its base, then load the adapter over it");
        var target = TorchEnvironment.ParseDtype(dtype);
        var module = ModelFactory.Create(Config, target, Device);
        using (no_grad())
        {
            var source = _module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in module.named_parameters()) parameter.copy_(source[name]);
        }
        return new CausalLanguageModel(module, Device, target, Name, DeviceReason, _logitChunkBytes);
    }

    /// <summary>Writes config.json and model.safetensors (float32) as a HuggingFace model folder.</summary>
    public void SaveAsHuggingFace(string folder)
    {
        if (_adapter is not null) throw new InvalidOperationException($"{Name} is an adapter model: it would save its base without the adapter");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), Config.ToHuggingFaceJson().ToJsonString(new() { WriteIndented = true }));
        using var scope = NewDisposeScope();
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"),
            _module.StateForSaving().Select(p => (p.Name, p.Tensor.detach().to(ScalarType.Float32))),
            new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>
    /// The underlying module (for training and saving); scoring code should not need it. An adapter model's is its base's,
    /// shared, and runs without the adapter when called directly.
    /// </summary>
    public CausalLm Module => _module;

    public long ParameterCount => _module.parameters().Sum(p => p.numel());

    /// <summary>
    /// Scores a batch of sequences of different lengths in one forward pass. For each sequence of length T
    /// returns T-1 log-probabilities (of tokens 1..T-1), and the last position's logits when asked.
    /// </summary>
    public IReadOnlyList<SequenceLogprobs> ScoreNextTokens(IReadOnlyList<int[]> sequences, bool includeLastLogits = false) =>
        ScoreTokens(sequences, firstTargets: null, includeLastLogits);

    /// <summary>
    /// Like <see cref="ScoreNextTokens"/>, but for sequence b only tokens firstTargets[b]..T-1 are scored
    /// (T - firstTargets[b] values): a scorer of responses skips the vocabulary projection of prompt positions.
    /// </summary>
    public IReadOnlyList<SequenceLogprobs> ScoreTokens(IReadOnlyList<int[]> sequences, IReadOnlyList<int>? firstTargets, bool includeLastLogits = false)
    {
        // A fresh pass is an extension of nothing.
        var inputs = sequences.Select((s, b) => new PassInput(s, firstTargets is null ? 1 : firstTargets[b])).ToArray();
        return [.. Extend(inputs, includeLastLogits).Select(r => new SequenceLogprobs(r.Logprobs, r.LastLogits))];
    }

    /// <summary>
    /// Scores sequences that continue cached pasts, in one forward pass whatever their past lengths: each
    /// sequence's pass starts at its PastLength, on the cached keys and values of the positions before it (how
    /// much of a cached prefix to read is the prefix cache's rule, not this pass's). Returns the log-probabilities
    /// of positions FirstTarget.., the last position's logits when asked, and new blocks of keys and values for
    /// the complete runs of NewBlockSize positions from CachedLength on (the caller owns them). Equals a fresh
    /// pass (<see cref="ScoreTokens"/>) on the whole sequence. Batches are right-padded: a real position never
    /// attends to a later (padding) key.
    /// </summary>
    public PassResult[] Extend(IReadOnlyList<PassInput> inputs, bool includeLastLogits = false)
    {
        if (inputs.Count == 0) return [];
        ValidateTokens([.. inputs.Select(i => i.Tokens)], 0);
        for (int b = 0; b < inputs.Count; b++)
        {
            inputs[b].ThrowIfPastDoesNotFit(b);
            var (computedFrom, first, length) = (inputs[b].PastLength, inputs[b].FirstTarget, inputs[b].Tokens.Length);
            if (first <= computedFrom || first > length)
                throw new ArgumentException($"sequence {b}: first scored token {first} must be in [{computedFrom + 1}, {length}] (token 0 has no context; " +
                    "positions before the pass are not recomputed)");
        }
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        int batch = inputs.Count;
        long[] pastLengths = [.. inputs.Select(i => (long)i.PastLength)];
        int[][] chunks = [.. inputs.Select(i => i.ComputedTokens)];
        long[] newLengths = [.. chunks.Select(c => (long)c.Length)];
        int maxNew = chunks.Max(c => c.Length);

        var (pastKeys, pastValues) = PadPasts(inputs, pastLengths, maxNew);
        bool keepNew = inputs.Any(i => i.NewBlockSize > 0);
        long[] ropeLengths = [.. inputs.Select(i => (long)i.RopeLengthOrOwn)];
        // A plain pass turns every row as its longest one: right unless some row's RoPE regime differs from that.
        bool plainRopeFits = ropeLengths.All(l => Config.RopeRegime((int)l) == Config.RopeRegime(maxNew));
        // Without pasts, without blocks to cut and with one RoPE, a plain causal pass from position 0 (LibTorch's fastest path).
        var past = pastLengths.Any(p => p > 0) || keepNew || !plainRopeFits
            ? new BatchedPast(pastKeys, pastValues, pastLengths, newLengths, ropeLengths, keepNew ? scope : null) : null;
        var flatHidden = FlatHidden(chunks, past);

        var rows = new List<long>();
        var targets = new List<long>();
        for (int b = 0; b < batch; b++)
            for (int t = inputs[b].FirstTarget - (int)pastLengths[b] - 1; t + 1 < chunks[b].Length; t++)
            {
                rows.Add(b * maxNew + t);
                targets.Add(chunks[b][t + 1]);
            }
        float[] all = GatherLogprobs(flatHidden, rows.ToArray(), targets.ToArray());

        float[][]? last = null;
        if (includeLastLogits)
        {
            var logits = LastLogits(flatHidden, chunks).cpu();
            last = [.. Enumerable.Range(0, batch).Select(b => logits[b].data<float>().ToArray())];
        }

        var results = new PassResult[batch];
        int offset = 0;
        for (int b = 0; b < batch; b++)
        {
            int n = inputs[b].Tokens.Length - inputs[b].FirstTarget;
            results[b] = new PassResult(all.AsSpan(offset, n).ToArray(), last?[b],
                past is null ? [] : KvBlock.CutOut(inputs[b], past.NewKeys, past.NewValues, b, firstPosition: pastLengths[b]));
            offset += n;
        }
        return results;
    }

    /// <summary>
    /// The final hidden states of a pass over right-padded chunks (row b: chunks[b], then padding that no real
    /// position attends to) continuing <paramref name="past"/>, flattened: row b's token t is at b × longest + t.
    /// </summary>
    internal Tensor FlatHidden(int[][] chunks, IAttentionCache? past)
    {
        int rows = chunks.Length, width = chunks.Max(c => c.Length);
        var ids = new long[rows * width];
        for (int b = 0; b < rows; b++)
            for (int t = 0; t < chunks[b].Length; t++) ids[b * width + t] = chunks[b][t];
        using var adapter = _adapter?.Activate();
        return _module.Hidden(tensor(ids, [rows, width], device: Device), past).reshape(rows * width, -1);
    }

    /// <summary>The float32 logits [rows, vocab] at each chunk's last real position, from <see cref="FlatHidden"/>'s states.</summary>
    internal Tensor LastLogits(Tensor flatHidden, int[][] chunks)
    {
        int width = chunks.Max(c => c.Length);
        var lastRows = tensor(chunks.Select((c, b) => (long)(b * width + c.Length - 1)).ToArray(), device: Device);
        using var adapter = _adapter?.Activate();
        return _module.Logits(flatHidden.index_select(0, lastRows)).to(ScalarType.Float32);
    }

    /// <summary>
    /// Each sequence's cached keys and values, left-aligned in one [batch, kv_heads, maxPast + maxNew, head_dim]
    /// tensor per layer, with room after the past for the pass's own keys and values (written there by
    /// <see cref="BatchedPast"/> instead of concatenating, which would copy the past again); null when no
    /// sequence has a past.
    /// </summary>
    (Tensor?[] Keys, Tensor?[] Values) PadPasts(IReadOnlyList<PassInput> inputs, long[] pastLengths, long maxNew)
    {
        int layers = Config.NumHiddenLayers;
        long maxPast = pastLengths.Max();
        if (maxPast == 0) return (new Tensor?[layers], new Tensor?[layers]);
        long[] shape = [inputs.Count, Config.NumKeyValueHeads, maxPast + maxNew, Config.HeadDim];
        Tensor[] keys = [.. Enumerable.Range(0, layers).Select(_ => empty(shape, Dtype, Device))];
        Tensor[] values = [.. Enumerable.Range(0, layers).Select(_ => empty(shape, Dtype, Device))];
        for (int b = 0; b < inputs.Count; b++)
        {
            // Padding slots are masked out, but must still be finite (uninitialised memory could hold NaNs,
            // and a masked NaN still poisons the softmax); the rest is overwritten.
            if (pastLengths[b] < maxPast)
                foreach (var t in keys.Concat(values)) t[b].narrow(1, pastLengths[b], maxPast - pastLengths[b]).zero_();
            KvBlock.CopyIn(inputs[b].PastBlocks, pastLengths[b], keys, values, b);
        }
        return (keys, values);
    }

    /// <summary>
    /// log p(target | row) for the given rows of flattened hidden states, in chunks so that the float32
    /// [rows, vocab] logits never exist whole (on long inputs that tensor is what exhausts memory).
    /// Log-softmax is taken in float32: logit[target] − logsumexp(logits).
    /// </summary>
    float[] GatherLogprobs(Tensor flatHidden, long[] rows, long[] targets)
    {
        var result = new float[rows.Length];
        long chunk = Math.Max(1, _logitChunkBytes / (4L * Config.VocabSize));
        using var adapter = _adapter?.Activate();
        for (long start = 0; start < rows.Length; start += chunk)
        {
            using var scope = NewDisposeScope();
            int n = (int)Math.Min(chunk, rows.Length - start);
            var rowIdx = tensor(rows.AsSpan((int)start, n).ToArray(), device: Device);
            var tgt = tensor(targets.AsSpan((int)start, n).ToArray(), device: Device).unsqueeze(1);
            var logits = _module.Logits(flatHidden.index_select(0, rowIdx)).to(ScalarType.Float32);
            var logprobs = logits.logsumexp(1).neg_().add_(logits.gather(1, tgt).squeeze(1), Scalars.One); // logit[target] − logsumexp
            logprobs.cpu().data<float>().CopyTo(result, (int)start);
        }
        return result;
    }

    /// <summary>Checks ids are in the vocabulary and the total length fits the context; throws ArgumentException naming the problem.</summary>
    public void ValidateTokens(IReadOnlyList<int[]> sequences, long pastLength)
    {
        for (int b = 0; b < sequences.Count; b++)
        {
            var s = sequences[b];
            if (s.Length == 0) throw new ArgumentException($"sequence {b} is empty");
            if (pastLength + s.Length > Config.MaxPositionEmbeddings)
                throw new ArgumentException($"sequence {b} has {pastLength + s.Length} tokens, more than the model context of {Config.MaxPositionEmbeddings} " +
                    "tokens (max_position_embeddings)");
            for (int t = 0; t < s.Length; t++)
                if ((uint)s[t] >= (uint)Config.VocabSize)
                    throw new ArgumentException($"sequence {b}, position {t}: token id {s[t]} is outside the vocabulary [0, {Config.VocabSize})");
        }
    }

    /// <summary>An adapter model frees its adapter only, a shared one nothing; a base model its module.</summary>
    public void Dispose()
    {
        if (_adapter is not null) _adapter.Dispose();
        else if (_ownsModule) _module.Dispose();
    }
}
