using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QService.Engine.Backends;
using QService.Engine.Batching;
using QService.Engine.Telemetry;
using QService.Runtime.Tokenization;

namespace QService.Engine;

/// <summary>
/// The scoring engine: turns requests into token sequences (tokenising text), checks them against the
/// limits and the models, queues them for the dynamic batcher and turns the two models' log-probabilities
/// into credits, Q-values and rewards. Transport-agnostic: the gRPC host is a thin adapter over it.
/// </summary>
public sealed partial class ScoringEngine : IDisposable
{
    readonly DynamicBatcher _batcher;
    readonly RequestLimits _limits;
    readonly BatchingOptions _batching;
    readonly int _maxBatchTokens;
    /// <summary>Tokenisation is CPU work on the callers' threads: at most one per core at a time, so that huge texts cannot starve the rest.</summary>
    readonly SemaphoreSlim _tokenizers = new(Environment.ProcessorCount);
    readonly ILogger _logger;
    /// <summary>Set on the owner thread before the batcher reports ready; read only after.</summary>
    volatile ServedModels? _models;
    /// <summary>What is loading and how far, for readiness and the log; null once loaded.</summary>
    readonly Func<string?> _loading;

    public EngineTelemetry Telemetry { get; }

    /// <summary>The production engine: loads the configured pair (or the demo pair in <paramref name="defaultPairFolder"/>) through LibTorch.</summary>
    public ScoringEngine(ModelOptions models, BatchingOptions batching, RequestLimits limits, string defaultPairFolder, ILogger<ScoringEngine> logger,
        PrefixCacheOptions? prefixCache = null)
        : this(Checked(models, batching, limits, prefixCache, defaultPairFolder, logger), batching, limits, logger, prefixCache)
    {
    }

    ScoringEngine(ModelPairLoader loader, BatchingOptions batching, RequestLimits limits, ILogger logger, PrefixCacheOptions? prefixCache)
        : this(loader.Load, batching, limits, logger, prefixCache, () => loader.Loading)
    {
    }

    /// <summary>
    /// The engine over any backend: <paramref name="load"/> runs once on the model-owner thread and returns the
    /// backend with what validation needs of its models (tests pass a fake).
    /// </summary>
    /// <param name="loading">what is loading and how far, while <paramref name="load"/> runs; null when nothing</param>
    public ScoringEngine(Func<LoadedBackend> load, BatchingOptions batching, RequestLimits limits, ILogger logger,
        PrefixCacheOptions? prefixCache = null, Func<string?>? loading = null)
    {
        prefixCache ??= new PrefixCacheOptions();
        OptionsProblems.ThrowIfAny(batching, limits, prefixCache);
        _limits = limits;
        _batching = batching;
        _maxBatchTokens = batching.MaxBatchTokens;
        _logger = logger;
        _loading = loading ?? (() => null);
        DynamicBatcher? batcher = null;
        Telemetry = new EngineTelemetry(() => batcher?.QueueDepth ?? 0);
        _batcher = batcher = new DynamicBatcher(() =>
        {
            var loaded = load();
            _models = loaded.Models;
            return loaded.Backend;
        }, batching, Telemetry, logger, prefixCache);
    }

    /// <summary>The model options are checked with the rest before anything loads, as one list of problems.</summary>
    static ModelPairLoader Checked(ModelOptions models, BatchingOptions batching, RequestLimits limits, PrefixCacheOptions? prefixCache,
        string defaultPairFolder, ILogger logger)
    {
        OptionsProblems.ThrowIfAny(models, batching, limits, prefixCache ?? new PrefixCacheOptions());
        return new ModelPairLoader(models, defaultPairFolder, logger);
    }

    /// <summary>Starts loading the models on the owner thread; <see cref="Ready"/> completes when they are warmed up.</summary>
    public void Start() => _batcher.Start();

    public Task Ready => _batcher.Ready;

    public bool IsReady => _batcher.Ready.IsCompletedSuccessfully;

    /// <summary>Ready for traffic: loaded, not draining, passes not failing in a row.</summary>
    public (bool Ready, string Reason) Readiness
    {
        get
        {
            var ready = _batcher.Ready;
            var (failures, reason) = _batcher.Failures;
            return EngineHealth.Readiness(ready.Status, ready.Exception?.InnerException?.Message, _batcher.IsDraining, failures, reason,
                _batching.FailuresBeforeUnready, _loading());
        }
    }

    /// <summary>Alive unless a pass has hung (the watchdog).</summary>
    public (bool Alive, string Reason) Liveness => EngineHealth.Liveness(_batcher.BusyFor, _batching.MaxPassSeconds);

    /// <summary>Tensors alive on the model thread after its last pass: flat under steady load unless something leaks.</summary>
    public long LiveTensors => _batcher.LiveTensors;

    /// <summary>Shutting down: new requests get UNAVAILABLE, accepted ones finish.</summary>
    public void BeginDrain() => _batcher.BeginDrain();

    /// <summary>Completes when nothing is queued, running or decoding.</summary>
    public async Task WaitIdleAsync(CancellationToken cancellation)
    {
        while (!_batcher.IsIdle) await Task.Delay(20, cancellation).ConfigureAwait(false);
    }

    ServedModels Models => IsReady
        ? _models!
        : throw new ScoringException(ScoringErrorKind.Unavailable, _batcher.Ready.IsFaulted
            ? $"the models failed to load: {_batcher.Ready.Exception!.InnerException!.Message}"
            : "the models are still loading; retry when the health check reports SERVING");

    public ServedPair Info => Models.Info;

    /// <summary>
    /// Scores every item of one request; results in request order. Throws <see cref="ScoringException"/> for
    /// bad input, limits and a full queue, and <see cref="OperationCanceledException"/> when the caller leaves.
    /// </summary>
    /// <param name="caller">who sent it (a connection, an API key): queued work is shared fairly among callers</param>
    public async Task<IReadOnlyList<ItemScores>> ScoreAsync(IReadOnlyList<ScoreItemInput> items, ScoreOptions options,
        CancellationToken cancellation, string caller = "")
    {
        var models = Models;
        double usedBeta = CheckBeta(options.Beta, models);
        CheckItemCount(items);

        CheckStepDelimiter(options.StepDelimiter, models);
        var policies = PolicyChoice.ForScore(items, options.Policies, models);
        var prepared = await PrepareAllAsync(items, models, options, PreparationRules.Score, cancellation).ConfigureAwait(false);
        var scores = await RunAsync(prepared, policies, wantsLastLogits: false, caller, cancellation, options.Reproducible).ConfigureAwait(false);
        var names = models.Info.Policies;
        // Item-major: each item's results under its policies, in the order they were asked for.
        return [.. prepared.SelectMany((p, i) => policies[i].Select((policy, k) =>
            Finish(p, scores[i].Policies[k].Logprobs, scores[i].Reference.Logprobs, usedBeta) with { Policy = names[policy].Name }))];
    }

    /// <summary>
    /// For each prompt + partial response, the Q so far and the candidates for the next token, with the same
    /// numbers Score gives for prefix + candidate. Validation errors name the field.
    /// </summary>
    public async Task<IReadOnlyList<NextTokenChoices>> NextTokensAsync(IReadOnlyList<ScoreItemInput> items, NextTokenOptions options,
        CancellationToken cancellation, string caller = "")
    {
        var models = Models;
        double beta = CheckBeta(options.Beta, models);
        int vocab = models.VocabSize;
        if (options.TopK < 0 || options.TopK > vocab)
            throw ScoringException.Invalid($"top_k is {options.TopK}; it must be between 1 and the vocabulary size {vocab}");
        bool hasCandidates = options.CandidateIds is { Count: > 0 };
        if (hasCandidates == (options.TopK > 0))
            throw ScoringException.Invalid(hasCandidates
                ? "top_k and candidate_ids are both set; give top_k for the best tokens, or candidate_ids for exactly those"
                : "neither top_k nor candidate_ids is set; give top_k > 0, or the candidate_ids to evaluate");
        if (hasCandidates)
            for (int c = 0; c < options.CandidateIds!.Count; c++)
                if ((uint)options.CandidateIds[c] >= (uint)vocab)
                    throw ScoringException.Invalid($"candidate_ids[{c}] is {options.CandidateIds[c]}, outside the vocabulary [0, {vocab})");
        if (!Enum.IsDefined(options.RankBy)) throw ScoringException.Invalid($"rank_by {(int)options.RankBy} is not POLICY, REFERENCE or CREDIT");
        CheckItemCount(items);

        var policies = PolicyChoice.PerItem(items, models);
        var prepared = await PrepareAllAsync(items, models, new ScoreOptions(), PreparationRules.NextTokens, cancellation).ConfigureAwait(false);
        var scores = await RunAsync(prepared, policies, wantsLastLogits: true, caller, cancellation).ConfigureAwait(false);
        return [.. prepared.Select((p, i) => Choose(p, scores[i], beta, options, models) with { Policy = models.Info.Policies[policies[i][0]].Name })];
    }

    /// <summary>The partial response goes through <see cref="Finish"/> (its Q is its reward), the next token's distributions through the same checks.</summary>
    NextTokenChoices Choose(PreparedItem item, ItemPasses scores, double beta, NextTokenOptions options, ServedModels models)
    {
        double q = Finish(item, scores.Policy.Logprobs, scores.Reference.Logprobs, beta).Reward;
        float[] policy = LogSoftmax(scores.Policy.LastLogits!), reference = LogSoftmax(scores.Reference.LastLogits!);
        CheckFinite(item, policy, reference, "next-token ");
        int[] ids = options.CandidateIds is { Count: > 0 } asked ? [.. asked] : TopK(policy, reference, beta, options);
        var candidates = ids.Select(id => new NextTokenCandidate(id, Surface(models.Tokenizer, id), policy[id], reference[id],
            (float)(beta * ((double)policy[id] - reference[id])))).ToArray();
        if (!candidates.All(c => float.IsFinite(c.Credit))) throw CreditOverflow(item, beta);
        return new NextTokenChoices(item.Id, item.PromptTokens, item.Tokens.Length - item.PromptTokens, q, candidates);
    }

    static int[] TopK(float[] policy, float[] reference, double beta, NextTokenOptions options)
    {
        Func<int, double> key = options.RankBy switch
        {
            RankBy.Reference => id => reference[id],
            RankBy.Credit => id => beta * ((double)policy[id] - reference[id]),
            _ => id => policy[id],
        };
        return [.. Enumerable.Range(0, policy.Length).OrderByDescending(key).ThenBy(id => id).Take(options.TopK)];
    }

    /// <summary>log-softmax in double, stored as float: logit − logsumexp, as Score takes it.</summary>
    static float[] LogSoftmax(float[] logits)
    {
        double max = logits.Max();
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        double lse = max + Math.Log(sum);
        return [.. logits.Select(l => (float)(l - lse))];
    }

    static void CheckStepDelimiter(string? delimiter, ServedModels models)
    {
        if (delimiter is null) return;
        if (delimiter.Length == 0)
            throw ScoringException.Invalid("step_delimiter is empty: omit it for no steps, or give the text that ends a step, e.g. \"\\n\" or \". \"");
        if (delimiter.Length > StepSplitter.MaxDelimiterLength)
            throw ScoringException.Invalid($"step_delimiter has {delimiter.Length} characters, more than {StepSplitter.MaxDelimiterLength}; " +
                "use the short text that ends a step");
        if (models.Tokenizer is null)
            throw ScoringException.Invalid("step_delimiter needs the response text, but this server has no tokenizer; omit step_delimiter");
    }

    double CheckBeta(double? requested, ServedModels models)
    {
        double beta = requested ?? models.DefaultBeta;
        if (!double.IsFinite(beta) || beta <= 0)
            throw ScoringException.Invalid($"beta must be a finite number > 0 (got {beta}); omit it to use the configured {models.DefaultBeta}");
        return beta;
    }

    void CheckItemCount(IReadOnlyList<ScoreItemInput> items)
    {
        if (items.Count == 0) throw ScoringException.Invalid("the request has no items; send at least one prompt/response item");
        if (items.Count > _limits.MaxItemsPerRequest)
            throw ScoringException.Exhausted($"the request has {items.Count} items, more than the limit of {_limits.MaxItemsPerRequest}; split it");
    }

    /// <summary>
    /// Queues a request's items, each for its policies, and awaits them all. When the caller leaves, or one item fails, the rest are
    /// dropped uncomputed. An isolated request (<see cref="RequestContext.Isolated"/>) is batched on its own.
    /// </summary>
    async Task<ItemPasses[]> RunAsync(PreparedItem[] prepared, int[][] policies, bool wantsLastLogits, string caller, CancellationToken cancellation,
        bool isolated = false)
    {
        long totalTokens = prepared.Sum(p => (long)p.Tokens.Length);
        if (totalTokens > _limits.MaxTokensPerRequest)
            throw ScoringException.Exhausted($"the request has {totalTokens} tokens in all, more than the limit of {_limits.MaxTokensPerRequest}; split it");
        var request = new RequestContext(Activity.Current?.Context ?? default, caller, isolated);
        using var requestScope = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var work = prepared.Select((p, i) => new WorkItem(p.Tokens, p.PromptTokens, request, requestScope.Token, wantsLastLogits, policies[i])).ToArray();
        foreach (var (item, p) in work.Zip(prepared))
            if (item.Cost > _maxBatchTokens)
                throw ScoringException.Exhausted($"item '{p.Id}': {item.Length} tokens under {item.Policies.Length} policies cost {item.Cost} " +
                    $"(tokens x {item.Policies.Length + 1} models), more than the batch budget MaxBatchTokens={_maxBatchTokens}; " +
                    "ask for fewer policies at once");
        using var registration = requestScope.Token.Register(() =>
        {
            foreach (var w in work) w.Completion.TrySetCanceled(cancellation);
        });
        _batcher.Enqueue(work);
        var results = new ItemPasses[work.Length];
        try
        {
            for (int i = 0; i < work.Length; i++) results[i] = await work[i].Completion.Task.ConfigureAwait(false);
        }
        catch
        {
            await requestScope.CancelAsync().ConfigureAwait(false);
            throw;
        }
        return results;
    }

    ItemScores Finish(PreparedItem item, float[] policy, float[] reference, double beta)
    {
        CheckFinite(item, policy, reference, "");
        var (credits, q, reward) = CreditMath.Compute(policy, reference, beta);
        // Finite log-probabilities can still overflow float32 credits when the caller's beta is huge.
        if (!AllFinite(credits) || !AllFinite(q) || !double.IsFinite(reward)) throw CreditOverflow(item, beta);
        var steps = item.StepEnds is { } ends ? new StepScores(ends, CreditMath.StepRewards(policy, reference, beta, ends)) : null;
        return new ItemScores(item.Id, item.Tokens[item.PromptTokens..], policy, reference, credits, q, reward, item.PromptTokens, item.Spans, steps);
    }

    static bool AllFinite(float[] values) => values.All(float.IsFinite);

    /// <summary>A non-finite log-probability is the models' failure, not the caller's: INTERNAL, with the details logged.</summary>
    void CheckFinite(PreparedItem item, float[] policy, float[] reference, string what)
    {
        if (AllFinite(policy) && AllFinite(reference)) return;
        _logger.LogError("Non-finite {What}log-probabilities for item {Id} ({Tokens} tokens): policy finite={PolicyFinite}, reference finite={ReferenceFinite}",
            what, item.Id, item.Tokens.Length, AllFinite(policy), AllFinite(reference));
        throw new ScoringException(ScoringErrorKind.Internal,
            $"item '{item.Id}': the models produced a non-finite {what}log-probability; this is logged for the operators");
    }

    static ScoringException CreditOverflow(PreparedItem item, double beta) =>
        ScoringException.Invalid($"item '{item.Id}': beta {beta} makes the credits overflow float32; use a smaller beta");

    sealed record PreparedItem(string Id, int[] Tokens, int PromptTokens, TokenSpan[]? Spans, int[]? StepEnds);

    /// <summary>Longest id accepted; longer ones are refused without being echoed.</summary>
    public const int MaxIdLength = 256;

    /// <summary>
    /// Tokenises and validates a request's items in order, on the caller's thread: text that cannot fit the
    /// limits is refused before any tokenisation, at most one request per core tokenises at a time, and a
    /// caller who leaves stops it between items.
    /// </summary>
    async Task<PreparedItem[]> PrepareAllAsync(IReadOnlyList<ScoreItemInput> items, ServedModels models, ScoreOptions options, PreparationRules rules,
        CancellationToken cancellation)
    {
        CheckTextLengths(items, models);
        bool anyText = items.Any(i => i.Prompt != null || i.Response != null || i.Messages is { Count: > 0 });
        if (anyText) await _tokenizers.WaitAsync(cancellation).ConfigureAwait(false);
        try
        {
            var prepared = new PreparedItem[items.Count];
            for (int i = 0; i < items.Count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                prepared[i] = Prepare(items[i], i, models, options, rules);
            }
            return prepared;
        }
        finally
        {
            if (anyText) _tokenizers.Release();
        }
    }

    /// <summary>
    /// Text too long for the limits whatever its tokens: no token covers more than the vocabulary's longest
    /// token (doubled, for normalisers that shrink text), so such text needs more tokens than allowed.
    /// </summary>
    void CheckTextLengths(IReadOnlyList<ScoreItemInput> items, ServedModels models)
    {
        if (models.Tokenizer is null) return; // text is refused anyway
        long longestToken = 2L * models.LongestTokenChars;
        long total = 0;
        for (int i = 0; i < items.Count; i++)
        {
            long chars = (long)(items[i].Prompt?.Length ?? 0) + (items[i].Response?.Length ?? 0)
                + (items[i].Messages?.Sum(m => (long)(m.Content?.Length ?? 0) + (m.Role?.Length ?? 0)) ?? 0);
            total += chars;
            if (chars > longestToken * models.MaxContext)
                throw ScoringException.Invalid($"item {i}: its {chars:N0} characters of text need more tokens than the model context of {models.MaxContext} " +
                    $"holds (a token covers at most {models.LongestTokenChars} characters); shorten it");
        }
        if (total > longestToken * _limits.MaxTokensPerRequest)
            throw ScoringException.Exhausted($"the request's {total:N0} characters of text need more than the limit of {_limits.MaxTokensPerRequest} " +
                "tokens per request; split it");
    }

    /// <summary>Tokenises (for text items) and validates one item; errors name the item and what to fix.</summary>
    PreparedItem Prepare(ScoreItemInput item, int index, ServedModels models, ScoreOptions options, PreparationRules rules)
    {
        bool includeTokenText = options.IncludeTokenText;
        string? responseText = null;
        List<int>? tokenEnds = null; // code-point end of each response token in responseText, for steps
        if (item.Id.Length > MaxIdLength)
            throw ScoringException.Invalid($"item {index}: its id has {item.Id.Length:N0} characters, more than {MaxIdLength}; use a shorter id");
        string name = string.IsNullOrEmpty(item.Id) ? $"item {index}" : $"item {index} ('{item.Id}')";
        // Messages become the text they render to; that prompt carries the template's own special tokens (no BOS added).
        bool rendered = item.Messages is { Count: > 0 };
        if (rendered) item = ChatPrompts.AsText(item, name, models.Tokenizer, rules.ResponseEndsTurn);
        // A prompt as text may take its response as ids: what a decoding client holds after sampling.
        bool responseIdsAfterText = item.Prompt != null && string.IsNullOrEmpty(item.Response)
            && item.PromptTokenIds is not { Count: > 0 } && item.ResponseTokenIds is { Count: > 0 };
        bool hasText = item.Prompt != null || item.Response != null;
        bool hasIds = item.PromptTokenIds is { Count: > 0 } || item.ResponseTokenIds is { Count: > 0 } && !responseIdsAfterText;
        if (hasText == hasIds)
            throw ScoringException.Invalid($"{name}: give either text (prompt, response) or token ids (prompt_token_ids, response_token_ids), " +
                $"not {(hasText ? "both" : "neither")}");

        int[] prompt, response;
        TokenSpan[]? spans = null;
        var tokenizer = models.Tokenizer;
        if (hasText)
        {
            if (tokenizer is null)
                throw ScoringException.Invalid($"{name}: this server has no tokenizer (no tokenizer.json with the policy); " +
                    "send prompt_token_ids and response_token_ids");
            if (string.IsNullOrEmpty(item.Response) && !rules.EmptyResponseAllowed && !responseIdsAfterText)
                throw ScoringException.Invalid($"{name}: the response is empty; there is nothing to score");
            // HfTokenizer is thread-safe: callers tokenise on their own threads, in parallel.
            prompt = tokenizer.EncodeIds(item.Prompt ?? "", addSpecialTokens: !rendered);
            if (responseIdsAfterText) (response, spans, responseText, tokenEnds) = ResponseIds(item.ResponseTokenIds!, tokenizer, options);
            else if (string.IsNullOrEmpty(item.Response)) response = [];
            else if (includeTokenText || options.StepDelimiter != null)
            {
                // Offsets only when asked for: aligning them costs more than tokenising.
                var responseEnc = tokenizer.Encode(item.Response, addSpecialTokens: false);
                response = responseEnc.Ids;
                if (includeTokenText)
                    spans = responseEnc.Ids.Select((id, i) => new TokenSpan(Surface(tokenizer, id), responseEnc.Offsets[i].Start, responseEnc.Offsets[i].End))
                        .ToArray();
                if (options.StepDelimiter != null)
                    (responseText, tokenEnds) = (item.Response, [.. responseEnc.Offsets.Select(o => o.End)]);
            }
            else response = tokenizer.EncodeIds(item.Response, addSpecialTokens: false);
        }
        else
        {
            prompt = item.PromptTokenIds?.ToArray() ?? [];
            (response, spans, responseText, tokenEnds) = ResponseIds(item.ResponseTokenIds ?? [], tokenizer, options);
            if (response.Length == 0 && !rules.EmptyResponseAllowed)
                throw ScoringException.Invalid($"{name}: response_token_ids is empty; there is nothing to score");
        }
        if (item.AppendEos && !rules.AppendEosAllowed)
            throw ScoringException.Invalid($"{name}: append_eos ends the response, so there is no next token; leave it unset");
        if (item.AppendEos)
        {
            if (models.EosTokenId is not int eos) throw ScoringException.Invalid($"{name}: append_eos is set but the model defines no end-of-sequence token");
            response = [.. response, eos];
            if (spans != null) spans = [.. spans, new TokenSpan(Surface(tokenizer, eos), -1, -1)];
            tokenEnds?.Add(-1);
        }
        if (prompt.Length == 0)
            throw ScoringException.Invalid($"{name}: the prompt has no tokens (and the tokenizer adds no BOS); the first response token needs " +
                "at least one token of context");

        int[] tokens = [.. prompt, .. response];
        int vocab = models.VocabSize;
        for (int t = 0; t < tokens.Length; t++)
            if ((uint)tokens[t] >= (uint)vocab)
                throw ScoringException.Invalid(t < prompt.Length
                    ? $"{name}: prompt token at position {t} has id {tokens[t]}, outside the vocabulary [0, {vocab})"
                    : $"{name}: response token at position {t - prompt.Length} has id {tokens[t]}, outside the vocabulary [0, {vocab})");
        if (rules.NextTokenMustFit && tokens.Length >= models.MaxContext)
            throw ScoringException.Invalid($"{name}: prompt ({prompt.Length} tokens) + partial response ({response.Length} tokens) " +
                $"= {tokens.Length} tokens fills the model context of {models.MaxContext}; there is no room for a next token");
        if (tokens.Length > models.MaxContext)
            throw ScoringException.Invalid($"{name}: prompt ({prompt.Length} tokens) + response ({response.Length} tokens) = {tokens.Length} tokens, " +
                $"longer than the model context of {models.MaxContext}; shorten the prompt or response");
        if (BatchPlanner.Cost(tokens.Length) > _maxBatchTokens)
            throw ScoringException.Exhausted($"{name}: {tokens.Length} tokens cost {BatchPlanner.Cost(tokens.Length)} (tokens x 2 models), " +
                $"more than the batch budget MaxBatchTokens={_maxBatchTokens}; it could never run");
        int[]? stepEnds = options.StepDelimiter is { } delimiter ? StepSplitter.StepEnds(responseText!, tokenEnds!, delimiter) : null;
        return new PreparedItem(string.IsNullOrEmpty(item.Id) ? index.ToString() : item.Id, tokens, prompt.Length, spans, stepEnds);
    }

    /// <summary>A response given as ids: its token texts (without offsets) and, for steps, its decoded text and token ends.</summary>
    static (int[] Ids, TokenSpan[]? Spans, string? Text, List<int>? Ends) ResponseIds(IReadOnlyList<int> ids, HfTokenizer? tokenizer, ScoreOptions options)
    {
        int[] response = [.. ids];
        var spans = options.IncludeTokenText ? response.Select(id => new TokenSpan(Surface(tokenizer, id), -1, -1)).ToArray() : null;
        if (options.StepDelimiter == null || tokenizer == null) return (response, spans, null, null);
        var (text, ends) = DecodedEnds(tokenizer, response);
        return (response, spans, text, ends);
    }

    /// <summary>
    /// The decoded text of token-id responses and each token's code-point end in it (the length of the
    /// decoded prefix). Quadratic in the response length; ids outside the vocabulary are refused later.
    /// </summary>
    static (string Text, List<int> Ends) DecodedEnds(HfTokenizer tokenizer, int[] response)
    {
        if (response.Any(id => (uint)id >= (uint)tokenizer.VocabSize)) return ("", [.. response.Select(_ => 0)]);
        var ends = new List<int>(response.Length);
        for (int t = 1; t <= response.Length; t++)
            ends.Add(CodePoints(tokenizer.Decode(response[..t])));
        return (tokenizer.Decode(response), ends);
    }

    static int CodePoints(string s) => s.EnumerateRunes().Count();

    /// <summary>A token's text for display; empty when there is no tokenizer or the id is not in it (it is validated later).</summary>
    static string Surface(HfTokenizer? tokenizer, int id) => tokenizer != null && (uint)id < (uint)tokenizer.VocabSize ? tokenizer.TokenSurface(id) : "";

    public void Dispose()
    {
        _batcher.Dispose();
        Telemetry.Dispose();
        _tokenizers.Dispose();
    }
}
