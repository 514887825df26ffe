using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using QService.Engine.Backends;
using QService.Engine.Caching;
using QService.Engine.Decoding;
using QService.Engine.Telemetry;

namespace QService.Engine.Batching;

/// <summary>
/// The queue in front of the models and the one thread that owns them. Callers enqueue work items and
/// await their completions; the owner thread loads the backend, warms it up, then takes what
/// <see cref="WorkPlanner"/> decides (a batch by token budget or queue delay, whichever first; samples joining
/// the decoder), runs policy and reference on each forward pass and hands the log-probabilities back (the
/// passes: DynamicBatcher.Passes.cs). Between batches it steps the running samples of the continuous decoder.
/// Callers never touch tensors; the batcher itself only sees the backend seam.
/// </summary>
internal sealed partial class DynamicBatcher : IDisposable
{
    readonly BatchingOptions _options;
    readonly EngineTelemetry _telemetry;
    readonly ILogger _logger;
    readonly Func<IScoringBackend> _loadBackend;
    readonly object _lock = new();
    /// <summary>Pending items in arrival order. Guarded by _lock.</summary>
    readonly LinkedList<WorkItem> _queue = new();
    /// <summary>Sample requests waiting to join the decoder, in arrival order. Guarded by _lock.</summary>
    readonly LinkedList<SampleWork> _samples = new();
    /// <summary>The running samples; made once the models are loaded. Owner thread only.</summary>
    ContinuousDecoder? _decoder;
    readonly PassFailures _failures;
    /// <summary>When the running pass or step started (Stopwatch ticks), 0 when the owner thread is idle.</summary>
    long _busySince;
    /// <summary>The owner thread holds work it took (a batch, admitted samples or running samples). Guarded by _lock.</summary>
    bool _busy;
    long _liveTensors;
    bool _draining;
    readonly TaskCompletionSource<IScoringBackend> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly Thread _owner;
    readonly PrefixCacheOptions? _cacheOptions;
    /// <summary>One prefix cache per model, made once the models are loaded; null when PrefixCache:Enabled is false. Owner thread only.</summary>
    ModelCaches? _caches;
    long _cacheBytes;
    IReadOnlyList<string> _policyNames = [];
    bool _stopping;

    public DynamicBatcher(Func<IScoringBackend> loadBackend, BatchingOptions options, EngineTelemetry telemetry, ILogger logger,
        PrefixCacheOptions? prefixCache = null)
    {
        _cacheOptions = prefixCache is { Enabled: true } ? prefixCache : null;
        _failures = new PassFailures(telemetry, logger);
        _loadBackend = loadBackend;
        _options = options;
        _telemetry = telemetry;
        _logger = logger;
        _owner = new Thread(OwnerLoop) { IsBackground = true, Name = "qservice-model-owner" };
    }

    /// <summary>Once the backend says which policies it serves: a prefix cache per model (when enabled) and the decoder over them.</summary>
    void StartServing(IScoringBackend models)
    {
        _policyNames = models.PolicyNames;
        if (_cacheOptions is { } options)
        {
            _cacheBytes = options.EffectiveMaxBytes;
            var caches = _caches = NewCaches();
            _telemetry.PrefixCacheBytes = () => caches.Bytes(_policyNames);
        }
        _decoder = new ContinuousDecoder(_telemetry, _caches, _policyNames);
    }

    /// <summary>Empty prefix caches, one per served model, within the configured budget.</summary>
    ModelCaches NewCaches() => new(_policyNames.Count, _cacheBytes, _cacheOptions!.BlockSize);

    /// <summary>Completes with the loaded, warmed-up backend; faults if loading fails.</summary>
    public Task<IScoringBackend> Ready => _ready.Task;

    /// <summary>Scoring items and samples waiting.</summary>
    public int QueueDepth { get { lock (_lock) return _queue.Count + QueuedSamples; } }

    /// <summary>Samples of the waiting Sample requests not yet in the decoder. Under _lock.</summary>
    int QueuedSamples => _samples.Sum(w => w.Waiting);

    /// <summary>Tokens waiting: items' prompt + response, samples' prompts times their waiting samples. Under _lock.</summary>
    long QueuedTokens => _queue.Sum(i => (long)i.Length) + _samples.Sum(w => (long)w.Waiting * w.Tokens.Length);

    public void Start() => _owner.Start();

    /// <summary>Consecutive failed passes (0 after a good one), and the last failure's reason.</summary>
    public (int Consecutive, string? Reason) Failures => (_failures.Consecutive, _failures.LastReason);

    /// <summary>How long the running pass or decoding step has been running; null when none is.</summary>
    public TimeSpan? BusyFor => Interlocked.Read(ref _busySince) is var since and > 0 ? Stopwatch.GetElapsedTime(since) : null;

    /// <summary>Tensors alive on the model thread after its last pass or step.</summary>
    public long LiveTensors => Interlocked.Read(ref _liveTensors);

    /// <summary>Refuses new work from now on (UNAVAILABLE); what is queued or running goes on.</summary>
    public void BeginDrain()
    {
        lock (_lock) _draining = true;
    }

    public bool IsDraining { get { lock (_lock) return _draining; } }

    /// <summary>Nothing queued, running or decoding: derived under the lock, where the owner thread takes work and marks itself busy in one step.</summary>
    public bool IsIdle
    {
        get { lock (_lock) return _queue.Count == 0 && _samples.Count == 0 && !_busy; }
    }

    /// <summary>Adds a request's items atomically, or refuses them all when the queue cannot hold them.</summary>
    public void Enqueue(IReadOnlyList<WorkItem> items)
    {
        long now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            RefuseWhenClosed();
            RefuseWhenFull(items.Count, items.Sum(i => (long)i.Length));
            foreach (var item in items)
            {
                item.EnqueuedAt = now;
                _queue.AddLast(item);
            }
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Queues a Sample request for the decoder, or refuses it when the queue cannot hold its samples.</summary>
    public void Enqueue(SampleWork work)
    {
        lock (_lock)
        {
            RefuseWhenClosed();
            RefuseWhenFull(work.N, (long)work.N * work.Tokens.Length);
            _samples.AddLast(work);
            Monitor.PulseAll(_lock);
        }
    }

    void RefuseWhenClosed()
    {
        if (_stopping || _draining)
            throw new ScoringException(ScoringErrorKind.Unavailable, "the service is shutting down and takes no new work; retry on another instance");
    }

    void RefuseWhenFull(int adding, long tokens)
    {
        int waiting = _queue.Count + QueuedSamples;
        if (waiting + adding > _options.MaxQueueItems)
            throw ScoringException.Exhausted(
                $"the queue is full ({waiting} of {_options.MaxQueueItems} items and samples waiting; this request adds {adding}); retry later");
        long waitingTokens = QueuedTokens;
        if (waitingTokens + tokens > _options.MaxQueueTokens)
            throw ScoringException.Exhausted(
                $"the queue is full ({waitingTokens} of {_options.MaxQueueTokens} tokens waiting; this request adds {tokens}); retry later");
    }

    void OwnerLoop()
    {
        IScoringBackend models;
        try
        {
            models = _loadBackend();
            StartServing(models);
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

        while (NextWork() is var (batch, admitted))
        {
            if (batch.Count > 0)
            {
                try { Run(models, batch); }
                catch (Exception e)
                {
                    // A failed batch fails its items, not the service.
                    var error = _failures.Failed(e, "scoring", batch.Select(i => i.Request.Parent));
                    foreach (var item in batch) item.Completion.TrySetException(error);
                }
            }
            var decoder = _decoder!;
            if (admitted.Count > 0 || decoder.Running > 0)
            {
                try
                {
                    decoder.Iterate(models, admitted);
                    _failures.Succeeded();
                }
                catch (Exception e)
                {
                    decoder.Fail(_failures.Failed(e, "sampling", admitted.Select(w => w.Work.Request.Parent)), admitted);
                }
            }
            Interlocked.Exchange(ref _liveTensors, models.LiveTensors);
            lock (_lock)
            {
                _busy = decoder.Running > 0;
                Interlocked.Exchange(ref _busySince, 0);
            }
        }
    }

    /// <summary>
    /// The next thing to do, as <see cref="WorkPlanner"/> decides it from the queues: a scoring batch and/or
    /// sample waves to admit, taken from the queues here. Cancelled work is dropped first, uncomputed.
    /// Returns null on shutdown.
    /// </summary>
    (IReadOnlyList<WorkItem> Batch, IReadOnlyList<SampleWave> Admitted)? NextWork()
    {
        lock (_lock)
        {
            while (true)
            {
                DropAbandoned();
                if (_stopping) return null;
                switch (WorkPlanner.Plan(_queue, _samples, _decoder!.Running, Stopwatch.GetTimestamp(), _options))
                {
                    case WorkPlan.Run run:
                        return Taken(run);
                    case WorkPlan.Wait { Ticks: long ticks }:
                        Monitor.Wait(_lock, Math.Max(1, (int)Math.Ceiling(ticks * 1000.0 / Stopwatch.Frequency)));
                        break;
                    default:
                        Monitor.Wait(_lock);
                        break;
                }
            }
        }
    }

    /// <summary>
    /// Takes the planned work off the queues and marks the owner thread busy, in the same lock that hands it the
    /// work, so that IsIdle never reads idle in between.
    /// </summary>
    (IReadOnlyList<WorkItem> Batch, IReadOnlyList<SampleWave> Admitted) Taken(WorkPlan.Run run)
    {
        if (run.Batch.Count > 0) RemoveWhere(_queue, run.Batch.ToHashSet().Contains);
        foreach (var wave in run.Admitted)
        {
            wave.Work.Started += wave.Count;
            if (wave.Work.Waiting == 0) _samples.Remove(wave.Work);
        }
        _busy = true;
        Interlocked.Exchange(ref _busySince, Stopwatch.GetTimestamp());
        return (run.Batch, run.Admitted);
    }

    /// <summary>Completes cancelled work as cancelled and removes it from the queues, uncomputed.</summary>
    void DropAbandoned()
    {
        foreach (var item in RemoveWhere(_queue, i => i.IsAbandoned))
        {
            item.Completion.TrySetCanceled(item.Cancellation);
            _telemetry.DroppedItems.Add(1, new KeyValuePair<string, object?>("reason", "cancelled"));
        }
        foreach (var work in RemoveWhere(_samples, w => w.IsAbandoned)) work.Completion.TrySetCanceled(work.Cancellation);
    }

    /// <summary>Removes the matching entries in one walk, keeping the others' order; returns what it removed.</summary>
    static IReadOnlyList<T> RemoveWhere<T>(LinkedList<T> list, Func<T, bool> match)
    {
        List<T>? removed = null; // none, almost always: no allocation on the owner thread's every turn
        for (var node = list.First; node != null;)
        {
            var next = node.Next;
            if (match(node.Value))
            {
                list.Remove(node);
                (removed ??= []).Add(node.Value);
            }
            node = next;
        }
        return removed ?? [];
    }

    void FailPending(Exception error)
    {
        lock (_lock)
        {
            foreach (var item in _queue) item.Completion.TrySetException(error);
            _queue.Clear();
            foreach (var work in _samples) work.Completion.TrySetException(error);
            _samples.Clear();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _stopping = true;
            Monitor.PulseAll(_lock);
        }
        var shutdown = new ScoringException(ScoringErrorKind.Unavailable, "the service is shutting down");
        if (_owner.IsAlive && !_owner.Join(TimeSpan.FromSeconds(30)))
        {
            // A pass still running uses the models: freeing them under it could crash the process. The OS frees them at exit.
            _logger.LogCritical("The model thread did not stop within 30 s (a pass is still running); the models are left to the process exit");
            FailPending(shutdown);
            return;
        }
        FailPending(shutdown);
        _decoder?.Fail(shutdown, []); // its batches hold the backend's tensors: freed before the backend
        // The caches hold the backend's tensors: freed before the backend, after the owner thread has stopped.
        _caches?.Dispose();
        if (_ready.Task.IsCompletedSuccessfully) _ready.Task.Result.Dispose();
    }
}
