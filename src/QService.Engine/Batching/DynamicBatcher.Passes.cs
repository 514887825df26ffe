using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QService.Engine.Backends;
using QService.Runtime.Scoring;

namespace QService.Engine.Batching;

// The forward passes of a scoring batch: one pass per length group, both models, continuing cached prefixes,
// with the batch's shared prefixes computed once first, and the spans that trace them.
internal sealed partial class DynamicBatcher
{
    void Run(IScoringBackend models, IReadOnlyList<WorkItem> batch)
    {
        long start = Stopwatch.GetTimestamp();
        foreach (var item in batch)
            _telemetry.QueueWait.Record(Stopwatch.GetElapsedTime(item.EnqueuedAt, start).TotalSeconds);
        TraceQueueWait(batch, start);

        if (_policyCache != null)
        {
            // Only a saving: if it fails (out of memory), each item computes its prefix in its own pass.
            try { PrefillSharedPrefixes(models, batch); }
            catch (Exception e) { _logger.LogWarning("Computing the batch's shared prefixes first failed ({Message}); " +
                "the items compute them themselves", e.Message); }
        }
        foreach (var pass in BatchPlanner.SplitByLength(batch, _options))
        {
            // Items cancelled since the batch was taken are not computed either.
            var live = pass.Where(i => !i.IsAbandoned).ToList();
            foreach (var gone in pass.Where(i => i.IsAbandoned))
            {
                gone.Completion.TrySetCanceled(gone.Cancellation);
                _telemetry.DroppedItems.Add(1, new KeyValuePair<string, object?>("reason", "cancelled"));
            }
            if (live.Count == 0) continue;

            int paddedTokens = live.Max(i => i.Length) * live.Count;
            _telemetry.Batches.Add(1);
            _telemetry.BatchSequences.Record(live.Count);
            _telemetry.BatchTokens.Record(paddedTokens);

            RunPass(models, live);
        }
    }

    /// <summary>
    /// One forward pass of both models over the items. A pass that runs out of memory is split in halves and
    /// retried before any item fails; any other failure fails its items (with a generic message), not the service.
    /// </summary>
    void RunPass(IScoringBackend models, List<WorkItem> live)
    {
        try
        {
            bool lastLogits = live.Any(i => i.WantsLastLogits);
            var policy = Forward(models, ModelRole.Policy, lastLogits, live);
            var reference = Forward(models, ModelRole.Reference, lastLogits, live);
            _failures.Succeeded(); // before the callers see their results: readiness is already up to date for them
            for (int i = 0; i < live.Count; i++)
            {
                _telemetry.ScoredTokens.Add(policy[i].Logprobs.Length);
                live[i].Completion.TrySetResult(new PairScores(policy[i], reference[i]));
            }
        }
        catch (Exception e) when (PassFailures.IsOutOfMemory(e) && live.Count > 1)
        {
            _failures.Splitting(e, live.Count);
            RunPass(models, live[..(live.Count / 2)]);
            RunPass(models, live[(live.Count / 2)..]);
        }
        catch (Exception e)
        {
            var error = _failures.Failed(e, "scoring", live.Select(i => i.Request.Parent));
            foreach (var item in live) item.Completion.TrySetException(error);
        }
    }

    /// <summary>
    /// Items of one batch that share a prefix (candidates after one prompt, samples of one partial response)
    /// would each compute it in the same pass, before any of them has cached it. So the shared prefixes not yet
    /// cached run first, once each, and the items then continue them from the cache. A prefix is computed in the RoPE
    /// regime of the items that continue it (turned as in a sequence of their length), so only items of one regime share one.
    /// </summary>
    void PrefillSharedPrefixes(IScoringBackend models, IReadOnlyList<WorkItem> batch)
    {
        int size = _policyCache!.BlockSize;
        (int Policy, int Reference) Regimes(int length) => (models.RopeRegime(ModelRole.Policy, length), models.RopeRegime(ModelRole.Reference, length));
        var live = batch.Where(i => !i.IsAbandoned).OrderBy(i => Regimes(i.Length)).ThenBy(i => i.Tokens, TokenOrder.Instance).ToList();
        var prefixes = new Dictionary<string, (WorkItem Item, int RopeLength)>();
        for (int k = 0; k + 1 < live.Count; k++)
        {
            var (a, b) = (live[k].Tokens, live[k + 1].Tokens);
            var regimes = Regimes(a.Length);
            if (Regimes(b.Length) != regimes) continue;
            int common = 0;
            int limit = Math.Min(a.Length, b.Length) - 1; // each item keeps at least one token of its own to compute
            while (common < limit && a[common] == b[common]) common++;
            int length = common / size * size;
            if (length < size || _policyCache.CachedLength(a, length, regimes.Policy) >= length
                && _referenceCache!.CachedLength(a, length, regimes.Reference) >= length) continue;
            int[] prefix = a[..length];
            string key = $"{regimes}:{string.Join(',', prefix)}";
            int firstTarget = Math.Min(length, Math.Min(live[k].PromptTokens, live[k + 1].PromptTokens));
            if (!prefixes.TryGetValue(key, out var existing) || existing.Item.PromptTokens > firstTarget)
                prefixes[key] = (new WorkItem(prefix, Math.Max(1, firstTarget), live[k].Request, CancellationToken.None), a.Length);
        }
        if (prefixes.Count == 0) return;
        var items = prefixes.Values.Select(p => p.Item).ToList();
        int[] ropeLengths = [.. prefixes.Values.Select(p => p.RopeLength)];
        Forward(models, ModelRole.Policy, lastLogits: false, items, ropeLengths);
        Forward(models, ModelRole.Reference, lastLogits: false, items, ropeLengths);
    }

    /// <summary>Lexicographic order of token sequences: sequences with a common prefix end up next to each other.</summary>
    sealed class TokenOrder : IComparer<int[]>
    {
        public static readonly TokenOrder Instance = new();
        public int Compare(int[]? x, int[]? y) => x!.AsSpan().SequenceCompareTo(y);
    }

    /// <summary>
    /// One model's forward pass over the items, each continuing the longest prefix its cache holds (the
    /// log-probabilities of cached positions come from the cache), and the new blocks cached after; cached and computed
    /// in the RoPE regime of the item's length, or of ropeLengths[k] (a shared prefix computed for longer items).
    /// </summary>
    PassResult[] Forward(IScoringBackend backend, ModelRole modelRole, bool lastLogits, List<WorkItem> items, int[]? ropeLengths = null)
    {
        string role = modelRole == ModelRole.Policy ? "policy" : "reference";
        var model = new KeyValuePair<string, object?>("model", role);
        var cache = modelRole == ModelRole.Policy ? _policyCache : _referenceCache;
        var hits = items.Select((i, k) => cache?.Lookup(i.Tokens, i.PromptTokens, backend.RopeRegime(modelRole, ropeLengths?[k] ?? i.Length))).ToArray();
        var inputs = items.Select((i, k) => (hits[k]?.Input() ?? new PassInput(i.Tokens, i.PromptTokens)) with { RopeLength = ropeLengths?[k] ?? 0 }).ToArray();
        try
        {
            var startTime = DateTimeOffset.UtcNow;
            long start = Stopwatch.GetTimestamp();
            var results = backend.Forward(modelRole, inputs, lastLogits);
            var elapsed = Stopwatch.GetElapsedTime(start);
            _telemetry.ForwardDuration.Record(elapsed.TotalSeconds, model);
            foreach (var request in items.Select(i => i.Request).Distinct())
                EmitSpan($"forward {role}", request.Parent, startTime, elapsed,
                    ("qservice.model", role), ("qservice.batch.sequences", items.Count), ("qservice.batch.max_length", items.Max(i => i.Length)));
            if (cache is null) return results;

            var before = cache.Counts;
            var merged = new PassResult[results.Length];
            for (int k = 0; k < results.Length; k++)
            {
                cache.Insert(hits[k]!, results[k].NewBlocks, results[k].Logprobs);
                // The pass's result as it came, with the cached log-probabilities in front: other outputs pass through.
                merged[k] = results[k] with { Logprobs = [.. hits[k]!.CachedLogprobs, .. results[k].Logprobs], NewBlocks = [] };
            }
            var counted = cache.Counts - before;
            _telemetry.PrefixHitTokens.Add(counted.HitTokens, model);
            _telemetry.PrefixComputedTokens.Add(counted.ComputedTokens, model);
            _telemetry.PrefixEvictions.Add(counted.Evictions, model);
            return merged;
        }
        finally
        {
            cache?.EndPass();
        }
    }

    void TraceQueueWait(IReadOnlyList<WorkItem> batch, long batchStart)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var group in batch.GroupBy(i => i.Request))
        {
            var waited = Stopwatch.GetElapsedTime(group.Min(i => i.EnqueuedAt), batchStart);
            EmitSpan("queue wait", group.Key.Parent, now - waited, waited, ("qservice.items", group.Count()));
        }
    }

    /// <summary>A finished child span of a request's RPC span, with the times measured on this thread.</summary>
    void EmitSpan(string name, ActivityContext parent, DateTimeOffset start, TimeSpan duration, params (string, object?)[] tags)
    {
        if (parent == default) return;
        using var activity = _telemetry.Activities.StartActivity(name, ActivityKind.Internal, parent, startTime: start);
        if (activity is null) return;
        foreach (var (key, value) in tags) activity.SetTag(key, value);
        activity.SetEndTime((start + duration).UtcDateTime);
    }
}
