using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QService.Engine.Backends;
using QService.Engine.Caching;
using QService.Engine.Telemetry;
using QService.Runtime.Scoring;

namespace QService.Engine.Batching;

// The forward passes of a scoring batch: one pass per length group and model (each policy its items asked for,
// the reference once over all of them), continuing cached prefixes, with the batch's shared prefixes computed
// once first, and the spans that trace them. An isolated request's batch runs against caches of its own that start
// empty, so that its numbers never depend on what other requests left in the cache.
internal sealed partial class DynamicBatcher
{
    void Run(IScoringBackend models, IReadOnlyList<WorkItem> batch)
    {
        long start = Stopwatch.GetTimestamp();
        foreach (var item in batch)
            _telemetry.QueueWait.Record(Stopwatch.GetElapsedTime(item.EnqueuedAt, start).TotalSeconds);
        TraceQueueWait(batch, start);

        using var isolated = batch[0].Request.Isolated && _caches != null ? NewCaches() : null;
        var caches = isolated ?? _caches;
        if (caches != null)
        {
            // Only a saving: if it fails (out of memory), each item computes its prefix in its own pass.
            try { PrefillSharedPrefixes(models, caches, batch); }
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

            RunPass(models, caches, live);
        }
    }

    /// <summary>
    /// One forward pass of each policy over its items and one of the reference over them all. A pass that runs out of
    /// memory is split in halves and retried before any item fails; any other failure fails its items (with a generic
    /// message), not the service.
    /// </summary>
    void RunPass(IScoringBackend models, ModelCaches? caches, List<WorkItem> live)
    {
        try
        {
            bool lastLogits = live.Any(i => i.WantsLastLogits);
            var byPolicy = new Dictionary<(WorkItem, int), PassResult>(); // items compare by reference
            foreach (int p in live.SelectMany(i => i.Policies).Distinct().Order())
            {
                var items = live.Where(i => i.Policies.Contains(p)).ToList();
                var results = Forward(models, caches, ModelRole.OfPolicy(p), lastLogits, items);
                for (int k = 0; k < items.Count; k++) byPolicy[(items[k], p)] = results[k];
            }
            var reference = Forward(models, caches, ModelRole.Reference, lastLogits, live);
            _failures.Succeeded(); // before the callers see their results: readiness is already up to date for them
            for (int i = 0; i < live.Count; i++)
            {
                var policies = live[i].Policies.Select(p => byPolicy[(live[i], p)]).ToArray();
                _telemetry.ScoredTokens.Add(reference[i].Logprobs.Length);
                live[i].Completion.TrySetResult(new ItemPasses(policies, reference[i]));
            }
        }
        catch (Exception e) when (PassFailures.IsOutOfMemory(e) && live.Count > 1)
        {
            _failures.Splitting(e, live.Count);
            RunPass(models, caches, live[..(live.Count / 2)]);
            RunPass(models, caches, live[(live.Count / 2)..]);
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
    /// cached run first, once each (through every policy that one of those items asks for, and the reference),
    /// and the items then continue them from the cache. A prefix is computed in the RoPE regime of the items that
    /// continue it (turned as in a sequence of their length), so only items of one regime share one.
    /// </summary>
    void PrefillSharedPrefixes(IScoringBackend models, ModelCaches caches, IReadOnlyList<WorkItem> batch)
    {
        int size = caches.BlockSize;
        // Every served model's regime at a length: items share a prefix only when it is the same for all of them.
        string Regimes(int length) => string.Join(',', Enumerable.Range(-1, _policyNames.Count + 1).Select(p => models.RopeRegime(new ModelRole(p), length)));
        var live = batch.Where(i => !i.IsAbandoned).OrderBy(i => Regimes(i.Length), StringComparer.Ordinal).ThenBy(i => i.Tokens, TokenOrder.Instance).ToList();
        var prefixes = new Dictionary<string, (WorkItem Prefix, HashSet<int> Policies, int RopeLength)>();
        for (int k = 0; k + 1 < live.Count; k++)
        {
            var (a, b) = (live[k].Tokens, live[k + 1].Tokens);
            string regimes = Regimes(a.Length);
            if (Regimes(b.Length) != regimes) continue;
            int common = 0;
            int limit = Math.Min(a.Length, b.Length) - 1; // each item keeps at least one token of its own to compute
            while (common < limit && a[common] == b[common]) common++;
            int length = common / size * size;
            var policies = live[k].Policies.Union(live[k + 1].Policies).ToHashSet();
            if (length < size || caches.AllHold(a, length, policies, role => models.RopeRegime(role, a.Length))) continue;
            int[] prefix = a[..length];
            string key = $"{regimes}:{string.Join(',', prefix)}";
            int firstTarget = Math.Min(length, Math.Min(live[k].PromptTokens, live[k + 1].PromptTokens));
            if (prefixes.TryGetValue(key, out var existing))
            {
                policies.UnionWith(existing.Policies);
                if (existing.Prefix.PromptTokens <= firstTarget) firstTarget = existing.Prefix.PromptTokens;
            }
            var item = new WorkItem(prefix, Math.Max(1, firstTarget), live[k].Request, CancellationToken.None, policies: [.. policies.Order()]);
            prefixes[key] = (item, policies, a.Length);
        }
        if (prefixes.Count == 0) return;
        var entries = prefixes.Values.ToList();
        foreach (int p in entries.SelectMany(e => e.Policies).Distinct().Order())
        {
            var mine = entries.Where(e => e.Policies.Contains(p)).ToList();
            Forward(models, caches, ModelRole.OfPolicy(p), lastLogits: false, [.. mine.Select(e => e.Prefix)], [.. mine.Select(e => e.RopeLength)]);
        }
        Forward(models, caches, ModelRole.Reference, lastLogits: false, [.. entries.Select(e => e.Prefix)], [.. entries.Select(e => e.RopeLength)]);
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
    PassResult[] Forward(IScoringBackend backend, ModelCaches? caches, ModelRole modelRole, bool lastLogits, List<WorkItem> items, int[]? ropeLengths = null)
    {
        var tags = ModelTags.Of(modelRole, _policyNames);
        string role = modelRole.IsReference ? "reference" : "policy";
        string name = modelRole.IsReference ? "reference" : _policyNames[modelRole.PolicyIndex];
        var cache = caches?.For(modelRole);
        var hits = items.Select((i, k) => cache?.Lookup(i.Tokens, i.PromptTokens, backend.RopeRegime(modelRole, ropeLengths?[k] ?? i.Length))).ToArray();
        var inputs = items.Select((i, k) => (hits[k]?.Input() ?? new PassInput(i.Tokens, i.PromptTokens)) with { RopeLength = ropeLengths?[k] ?? 0 })
            .ToArray();
        try
        {
            var startTime = DateTimeOffset.UtcNow;
            long start = Stopwatch.GetTimestamp();
            var results = backend.Forward(modelRole, inputs, lastLogits);
            var elapsed = Stopwatch.GetElapsedTime(start);
            _telemetry.ForwardDuration.Record(elapsed.TotalSeconds, tags);
            _telemetry.ForwardTokens.Add(inputs.Sum(i => (long)(i.Tokens.Length - i.PastLength)), tags);
            foreach (var request in items.Select(i => i.Request).Distinct())
                EmitSpan($"forward {role}", request.Parent, startTime, elapsed, ("qservice.model", role), ("qservice.policy", name),
                    ("qservice.batch.sequences", items.Count), ("qservice.batch.max_length", items.Max(i => i.Length)));
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
            _telemetry.PrefixHitTokens.Add(counted.HitTokens, tags);
            _telemetry.PrefixComputedTokens.Add(counted.ComputedTokens, tags);
            _telemetry.PrefixEvictions.Add(counted.Evictions, tags);
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
