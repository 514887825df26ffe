using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QService.Engine.Backends;
using QService.Engine.Telemetry;

namespace QService.Engine.Batching;

/// <summary>
/// The queue in front of the models and the one thread that owns them. Callers enqueue work items and
/// await their completions; the owner thread loads the backend, warms it up, then forms batches (token
/// budget or queue delay, whichever first), runs policy and reference on each forward pass and hands the
/// log-probabilities back. Callers never touch tensors; the batcher itself only sees the backend seam.
/// </summary>
internal sealed class DynamicBatcher : IDisposable
{
    readonly BatchingOptions _options;
    readonly EngineTelemetry _telemetry;
    readonly ILogger _logger;
    readonly Func<IScoringBackend> _loadBackend;
    readonly object _lock = new();
    /// <summary>Pending items in arrival order. Guarded by _lock.</summary>
    readonly LinkedList<WorkItem> _queue = new();
    readonly TaskCompletionSource<IScoringBackend> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly Thread _owner;
    bool _stopping;

    public DynamicBatcher(Func<IScoringBackend> loadBackend, BatchingOptions options, EngineTelemetry telemetry, ILogger logger)
    {
        _loadBackend = loadBackend;
        _options = options;
        _telemetry = telemetry;
        _logger = logger;
        _owner = new Thread(OwnerLoop) { IsBackground = true, Name = "qservice-model-owner" };
    }

    /// <summary>Completes with the loaded, warmed-up backend; faults if loading fails.</summary>
    public Task<IScoringBackend> Ready => _ready.Task;

    public int QueueDepth { get { lock (_lock) return _queue.Count; } }

    public void Start() => _owner.Start();

    /// <summary>Adds a request's items atomically, or refuses them all when the queue cannot hold them.</summary>
    public void Enqueue(IReadOnlyList<WorkItem> items)
    {
        long now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            if (_stopping) throw new ScoringException(ScoringErrorKind.Unavailable, "the service is shutting down");
            if (_queue.Count + items.Count > _options.MaxQueueItems)
                throw ScoringException.Exhausted(
                    $"the scoring queue is full ({_queue.Count} of {_options.MaxQueueItems} items waiting; this request adds {items.Count}); retry later");
            foreach (var item in items)
            {
                item.EnqueuedAt = now;
                _queue.AddLast(item);
            }
            Monitor.PulseAll(_lock);
        }
    }

    void OwnerLoop()
    {
        IScoringBackend models;
        try
        {
            models = _loadBackend();
            models.WarmUp();
            _ready.SetResult(models);
        }
        catch (Exception e)
        {
            _logger.LogCritical(e, "Loading the models failed: {Message}", e.Message);
            _ready.SetException(e);
            FailPending(new ScoringException(ScoringErrorKind.Unavailable, $"the models failed to load: {e.Message}"));
            return;
        }

        while (NextBatch() is { } batch)
        {
            try { Run(models, batch); }
            catch (Exception e)
            {
                // A failed batch fails its items, not the service.
                _logger.LogError(e, "A batch of {Count} items failed: {Message}", batch.Count, e.Message);
                foreach (var item in batch)
                    item.Completion.TrySetException(new ScoringException(ScoringErrorKind.Internal, $"scoring failed: {e.Message}"));
            }
        }
    }

    /// <summary>
    /// Waits for the first item, then until the batch is full or its oldest item has waited MaxQueueDelayMs,
    /// then takes the batch. Cancelled items are dropped here, uncomputed. Returns null on shutdown.
    /// </summary>
    List<WorkItem>? NextBatch()
    {
        long maxDelay = (long)(_options.MaxQueueDelayMs * Stopwatch.Frequency / 1000.0);
        lock (_lock)
        {
            while (true)
            {
                DropAbandoned();
                if (_stopping) return null;
                if (_queue.Count == 0)
                {
                    Monitor.Wait(_lock);
                    continue;
                }
                long waited = Stopwatch.GetTimestamp() - _queue.First!.Value.EnqueuedAt;
                if (waited >= maxDelay || QueuedCostFillsBatch())
                    return BatchPlanner.TakeBatch(_queue, _options);
                int remainingMs = (int)Math.Ceiling((maxDelay - waited) * 1000.0 / Stopwatch.Frequency);
                Monitor.Wait(_lock, Math.Max(1, remainingMs));
            }
        }
    }

    bool QueuedCostFillsBatch()
    {
        int cost = 0, count = 0;
        foreach (var item in _queue)
        {
            cost += BatchPlanner.Cost(item.Length);
            if (++count >= _options.MaxBatchSequences || cost >= _options.MaxBatchTokens) return true;
        }
        return false;
    }

    void DropAbandoned()
    {
        for (var node = _queue.First; node != null;)
        {
            var next = node.Next;
            if (node.Value.IsAbandoned)
            {
                _queue.Remove(node);
                node.Value.Completion.TrySetCanceled(node.Value.Cancellation);
                _telemetry.DroppedItems.Add(1, new KeyValuePair<string, object?>("reason", "cancelled"));
            }
            node = next;
        }
    }

    void Run(IScoringBackend models, List<WorkItem> batch)
    {
        long start = Stopwatch.GetTimestamp();
        foreach (var item in batch)
            _telemetry.QueueWait.Record(Stopwatch.GetElapsedTime(item.EnqueuedAt, start).TotalSeconds);
        TraceQueueWait(batch, start);

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

            var sequences = live.Select(i => i.Tokens).ToList();
            var firstTargets = live.Select(i => i.PromptTokens).ToList();
            int paddedTokens = live.Max(i => i.Length) * live.Count;
            _telemetry.Batches.Add(1);
            _telemetry.BatchSequences.Record(live.Count);
            _telemetry.BatchTokens.Record(paddedTokens);

            bool lastLogits = live.Any(i => i.WantsLastLogits);
            var policy = Forward(models, ModelRole.Policy, sequences, firstTargets, lastLogits, live);
            var reference = Forward(models, ModelRole.Reference, sequences, firstTargets, lastLogits, live);
            for (int i = 0; i < live.Count; i++)
            {
                _telemetry.ScoredTokens.Add(policy[i].Logprobs.Length);
                live[i].Completion.TrySetResult(new PairScores(policy[i].Logprobs, reference[i].Logprobs, policy[i].LastLogits, reference[i].LastLogits));
            }
        }
    }

    ForwardResult[] Forward(IScoringBackend backend, ModelRole modelRole, List<int[]> sequences, List<int> firstTargets, bool lastLogits, List<WorkItem> items)
    {
        string role = modelRole == ModelRole.Policy ? "policy" : "reference";
        var startTime = DateTimeOffset.UtcNow;
        long start = Stopwatch.GetTimestamp();
        var result = backend.Forward(modelRole, sequences, firstTargets, lastLogits);
        var elapsed = Stopwatch.GetElapsedTime(start);
        _telemetry.ForwardDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("model", role));
        foreach (var request in items.Select(i => i.Request).Distinct())
            EmitSpan($"forward {role}", request.Parent, startTime, elapsed,
                ("qservice.model", role), ("qservice.batch.sequences", items.Count), ("qservice.batch.max_length", sequences.Max(s => s.Length)));
        return result;
    }

    void TraceQueueWait(List<WorkItem> batch, long batchStart)
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

    void FailPending(Exception error)
    {
        lock (_lock)
        {
            foreach (var item in _queue) item.Completion.TrySetException(error);
            _queue.Clear();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _stopping = true;
            Monitor.PulseAll(_lock);
        }
        if (_owner.IsAlive) _owner.Join(TimeSpan.FromSeconds(30));
        FailPending(new ScoringException(ScoringErrorKind.Unavailable, "the service is shutting down"));
        if (_ready.Task.IsCompletedSuccessfully) _ready.Task.Result.Dispose();
    }
}
