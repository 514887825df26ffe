using System.Diagnostics;
using QService.Engine.Backends;
using QService.Engine.Caching;
using QService.Engine.Sampling;
using QService.Engine.Telemetry;
using QService.Runtime.Scoring;

namespace QService.Engine.Decoding;

/// <summary>
/// Decodes the running samples together, one token per sample per <see cref="Iterate"/> (continuous
/// batching, as in vLLM and TGI): new requests join at any iteration after a prefill that reuses the prefix
/// cache and serves all n samples of a request; finished or cancelled samples leave at once, so the batch
/// never waits for its longest member. Both models run every step, so each token's credit comes for free.
/// Where the RoPE depends on the length (longrope past original_max_position_embeddings), a finished sample whose
/// steps ran in another regime than its whole sequence is scored again by a fresh pass of both models, so that its
/// numbers are Score's (<see cref="Rescore"/>). Owner thread only: the batcher calls it between scoring passes.
/// </summary>
internal sealed class ContinuousDecoder(EngineTelemetry telemetry, PrefixCache? policyCache, PrefixCache? referenceCache) : IDisposable
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

    /// <summary>Running samples; sequence s sits in slot s of both decode batches.</summary>
    readonly List<Sequence> _running = [];
    IDecodeBatch? _policy, _reference;

    public int Running => _running.Count;

    /// <summary>Admits new requests, then draws one token for every running sample, lets finished ones leave and steps the rest.</summary>
    public void Iterate(IScoringBackend backend, IReadOnlyList<SampleWave> admitted)
    {
        _policy ??= backend.StartDecoding(ModelRole.Policy);
        _reference ??= backend.StartDecoding(ModelRole.Reference);
        var joining = admitted.Where(w => !w.Work.IsAbandoned).ToList();
        if (joining.Count > 0) Admit(backend, joining);

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

    /// <summary>
    /// The new requests' prompts (and partial responses), computed in one pass per model, each once for the
    /// samples of its wave and continuing what the prefix cache holds. Their samples join in the batches' slot order.
    /// </summary>
    void Admit(IScoringBackend backend, IReadOnlyList<SampleWave> waves)
    {
        var works = waves.Select(w => w.Work).ToList();
        var policy = AddToBatch(_policy!, policyCache, waves, length => backend.RopeRegime(ModelRole.Policy, length));
        var reference = AddToBatch(_reference!, referenceCache, waves, length => backend.RopeRegime(ModelRole.Reference, length));
        for (int w = 0; w < waves.Count; w++) _running.Add(new Sequence(works[w], waves[w].First, policy[w], reference[w]));
        for (int w = 0; w < waves.Count; w++)
            for (int i = 1; i < waves[w].Count; i++) _running.Add(new Sequence(works[w], waves[w].First + i, policy[w], reference[w]));
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
    static bool StepsChangedRegime(IScoringBackend backend, Sequence sequence)
    {
        int start = sequence.Work.Tokens.Length, length = start + sequence.Generated.Count;
        return new[] { ModelRole.Policy, ModelRole.Reference }.Any(role =>
            Enumerable.Range(start, length - start).Any(step => backend.RopeRegime(role, step) != backend.RopeRegime(role, length)));
    }

    /// <summary>
    /// The sample's log-probabilities from a fresh pass of each model over its finished sequence, as Score computes them (one
    /// pass per model, once per such sample): sampled = scored, while its tokens were drawn as generate() draws them.
    /// </summary>
    static void Rescore(IScoringBackend backend, Sequence sequence)
    {
        var input = new PassInput([.. sequence.Work.Tokens, .. sequence.Generated], sequence.Work.Tokens.Length);
        foreach (var (role, numbers) in new[] { (ModelRole.Policy, sequence.Policy), (ModelRole.Reference, sequence.Reference) })
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
        var policy = _policy!.Step(tokens);
        var reference = _reference!.Step(tokens);
        for (int s = 0; s < _running.Count; s++)
            (_running[s].NextPolicy, _running[s].NextReference) = (policy[s], reference[s]);
        telemetry.DecodeStepDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds);
        telemetry.DecodeStepSequences.Record(_running.Count);
    }

    /// <summary>A failed step leaves the batches in an unknown state: every running request fails, and the next one starts afresh.</summary>
    public void Fail(Exception error, IEnumerable<SampleWave> admitted)
    {
        foreach (var work in _running.Select(s => s.Work).Concat(admitted.Select(w => w.Work)).Distinct()) work.Completion.TrySetException(error);
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
