using System.Diagnostics;
using QService.Engine.Backends;
using QService.Engine.Caching;
using QService.Engine.Sampling;
using QService.Engine.Telemetry;
using QService.Runtime.Scoring;

namespace QService.Engine.Decoding;

/// <summary>
/// The running samples of one policy, decoded together with the reference: sequence s sits in slot s of both
/// decode batches. New requests join after a prefill that reuses the prefix caches and serves all n samples of a
/// request; finished or cancelled samples leave at once. Owner thread only.
/// </summary>
internal sealed class DecodeGroup(ModelRole policy, EngineTelemetry telemetry, ModelCaches? caches) : IDisposable
{
    sealed class Sequence(SampleWork work, int index, ReadOnlyMemory<float> policy, ReadOnlyMemory<float> reference)
    {
        public SampleWork Work { get; } = work;
        public int Index { get; } = index;
        public SampleRandom Random { get; } = new(work.Seed, index);
        public List<int> Generated { get; } = [];
        public List<float> Policy { get; } = [];
        public List<float> Reference { get; } = [];
        /// <summary>Next-token log-probabilities from the last step.</summary>
        public ReadOnlyMemory<float> NextPolicy { get; set; } = policy;
        public ReadOnlyMemory<float> NextReference { get; set; } = reference;
        public FinishReason? Finish { get; set; }
    }

    readonly List<Sequence> _running = [];
    IDecodeBatch? _policy, _reference;

    public int Running => _running.Count;

    public IEnumerable<SampleWork> Works => _running.Select(s => s.Work);

    /// <summary>
    /// The new requests' prompts (and partial responses), computed in one pass per model, each once for the
    /// samples of its wave and continuing what the prefix cache holds. Their samples join in the batches' slot order.
    /// </summary>
    public void Admit(IScoringBackend backend, IReadOnlyList<SampleWave> waves)
    {
        _policy ??= backend.StartDecoding(policy);
        _reference ??= backend.StartDecoding(ModelRole.Reference);
        var works = waves.Select(w => w.Work).ToList();
        var policyNext = AddToBatch(_policy, caches?.For(policy), waves, length => backend.RopeRegime(policy, length));
        var referenceNext = AddToBatch(_reference, caches?.Reference, waves, length => backend.RopeRegime(ModelRole.Reference, length));
        for (int w = 0; w < waves.Count; w++) _running.Add(new Sequence(works[w], waves[w].First, policyNext[w], referenceNext[w]));
        for (int w = 0; w < waves.Count; w++)
            for (int i = 1; i < waves[w].Count; i++) _running.Add(new Sequence(works[w], waves[w].First + i, policyNext[w], referenceNext[w]));
    }

    /// <summary>The prompts' pass continues cached blocks of the RoPE regime of the prompt's length, as a fresh pass over it would compute them.</summary>
    static ReadOnlyMemory<float>[] AddToBatch(IDecodeBatch batch, PrefixCache? cache, IReadOnlyList<SampleWave> waves, Func<int, int> regimeOf)
    {
        var works = waves.Select(w => w.Work).ToList();
        if (cache is null)
            return [.. batch.Add([.. waves.Select(w => new DecodeStart(new PassInput(w.Work.Tokens, w.Work.Tokens.Length), w.Count))])
                .Select(a => a.NextLogprobs)];
        try
        {
            // Decoding scores only the next token, so no cached log-probabilities are asked for.
            var hits = works.Select(w => cache.Lookup(w.Tokens, firstTarget: w.Tokens.Length, regimeOf(w.Tokens.Length))).ToList();
            var admissions = batch.Add([.. works.Select((w, i) => new DecodeStart(hits[i].Input(), waves[i].Count))]);
            for (int i = 0; i < works.Count; i++) cache.Insert(hits[i], admissions[i].NewBlocks, computed: []);
            return [.. admissions.Select(a => a.NextLogprobs)];
        }
        finally
        {
            cache.EndPass();
        }
    }

    /// <summary>Draws one token for every running sample, lets finished and abandoned ones leave, and steps the rest.</summary>
    public void Iterate(IScoringBackend backend)
    {
        for (int s = _running.Count - 1; s >= 0; s--)
            if (_running[s].Work.IsAbandoned)
            {
                // The caller left: the tokens this sample would still have generated are never computed.
                telemetry.SampleTokensCancelled.Add(_running[s].Work.Budget - _running[s].Generated.Count);
                Leave(s);
            }
        // Drawing is managed code over the vocabulary, independent per sample: spread over the cores while the models rest.
        Parallel.For(0, _running.Count, s => Draw(_running[s]));
        telemetry.SampledTokens.Add(_running.Count);
        foreach (var finished in _running.Where(s => s.Finish is not null && StepsChangedRegime(backend, s))) Rescore(backend, finished);
        for (int s = _running.Count - 1; s >= 0; s--)
            if (_running[s].Finish is { } finish) Complete(s, finish);
        if (_running.Count > 0) Step();
    }

    static void Draw(Sequence sequence)
    {
        var work = sequence.Work;
        var policy = sequence.NextPolicy.Span;
        var reference = sequence.NextReference.Span;
        int token = work.Distribution.Draw(policy, reference, sequence.Random.NextDouble());
        sequence.Generated.Add(token);
        sequence.Policy.Add(policy[token]);
        sequence.Reference.Add(reference[token]);
        if (token == work.EosTokenId) sequence.Finish = FinishReason.Eos;
        else if (work.Stop?.FoundIn(sequence.Generated) == true) sequence.Finish = FinishReason.Stop;
        else if (sequence.Generated.Count >= work.Budget) sequence.Finish = work.BudgetReason;
    }

    /// <summary>
    /// Whether some token of the sample was drawn from a step in another RoPE regime than that of its whole sequence (longrope: a
    /// sample that passed original_max_position_embeddings). Its step numbers are then those of HF's generate() (every step equals
    /// a fresh pass over the sequence so far), not those of a pass over the finished sequence.
    /// </summary>
    bool StepsChangedRegime(IScoringBackend backend, Sequence sequence)
    {
        int start = sequence.Work.Tokens.Length, length = start + sequence.Generated.Count;
        return new[] { policy, ModelRole.Reference }.Any(role =>
            Enumerable.Range(start, length - start).Any(step => backend.RopeRegime(role, step) != backend.RopeRegime(role, length)));
    }

    /// <summary>
    /// The sample's log-probabilities from a fresh pass of each model over its finished sequence, as Score computes them (one
    /// pass per model, once per such sample): sampled = scored, while its tokens were drawn as generate() draws them.
    /// </summary>
    void Rescore(IScoringBackend backend, Sequence sequence)
    {
        var input = new PassInput([.. sequence.Work.Tokens, .. sequence.Generated], sequence.Work.Tokens.Length);
        foreach (var (role, numbers) in new[] { (policy, sequence.Policy), (ModelRole.Reference, sequence.Reference) })
        {
            numbers.Clear();
            numbers.AddRange(backend.Forward(role, [input], lastLogits: false)[0].Logprobs);
        }
    }

    void Complete(int slot, FinishReason finish)
    {
        var sequence = _running[slot];
        var work = sequence.Work;
        work.Results[sequence.Index] = new GeneratedSample([.. sequence.Generated], [.. sequence.Policy], [.. sequence.Reference], finish);
        if (++work.Finished == work.N) work.Completion.TrySetResult([.. work.Results.Select(r => r!)]);
        Leave(slot);
    }

    /// <summary>Removes a sample from both batches; the last one moves into its slot, here as there.</summary>
    void Leave(int slot)
    {
        _policy!.Remove(slot);
        _reference!.Remove(slot);
        _running[slot] = _running[^1];
        _running.RemoveAt(_running.Count - 1);
    }

    void Step()
    {
        long start = Stopwatch.GetTimestamp();
        int[] tokens = [.. _running.Select(s => s.Generated[^1])];
        var policyNext = _policy!.Step(tokens);
        var referenceNext = _reference!.Step(tokens);
        for (int s = 0; s < _running.Count; s++)
            (_running[s].NextPolicy, _running[s].NextReference) = (policyNext[s], referenceNext[s]);
        telemetry.DecodeStepDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds);
        telemetry.DecodeStepSequences.Record(_running.Count);
    }

    /// <summary>Forgets the running samples (their requests are failed by the caller) and frees the batches.</summary>
    public void Clear()
    {
        _running.Clear();
        Dispose();
    }

    public void Dispose()
    {
        _policy?.Dispose();
        _reference?.Dispose();
        (_policy, _reference) = (null, null);
    }
}
