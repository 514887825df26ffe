using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace QService.Engine.Telemetry;

/// <summary>
/// Every metric and span source of the engine, declared in one place. The host exports them (Prometheus,
/// OTLP); names follow Prometheus conventions once the exporter adds unit suffixes and _total.
/// </summary>
public sealed class EngineTelemetry : IDisposable
{
    public const string MeterName = "QService.Engine";
    public const string ActivitySourceName = "QService.Engine";

    static readonly double[] SecondsBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    static readonly double[] SequenceBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];
    static readonly double[] TokenBuckets = [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

    readonly Meter _meter = new(MeterName);
    public ActivitySource Activities { get; } = new(ActivitySourceName);

    public Histogram<int> BatchSequences { get; }
    public Histogram<int> BatchTokens { get; }
    public Counter<long> ScoredTokens { get; }
    public Histogram<double> ForwardDuration { get; }
    public Histogram<double> QueueWait { get; }
    public Counter<long> DroppedItems { get; }
    public Counter<long> Batches { get; }
    public Counter<long> PrefixHitTokens { get; }
    public Counter<long> PrefixComputedTokens { get; }
    public Counter<long> PrefixEvictions { get; }
    /// <summary>Bytes held by the prefix caches, per model; set by the batcher.</summary>
    public Func<IEnumerable<Measurement<long>>> PrefixCacheBytes { get; set; } = () => [];

    public EngineTelemetry(Func<int> queueDepth)
    {
        _meter.CreateObservableGauge("qservice_queue_depth", queueDepth, unit: "{item}", description: "Items waiting for a batch.");
        BatchSequences = _meter.CreateHistogram("qservice_batch_sequences", unit: "{sequence}", description: "Sequences per forward pass.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = SequenceBuckets.Select(b => (int)b).ToArray() });
        BatchTokens = _meter.CreateHistogram("qservice_batch_tokens", unit: "{token}", description: "Tokens (prompt + response, padding included) per forward pass, per model.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = TokenBuckets.Select(b => (int)b).ToArray() });
        ScoredTokens = _meter.CreateCounter<long>("qservice_scored_tokens", unit: "{token}", description: "Response tokens scored (each by both models).");
        ForwardDuration = _meter.CreateHistogram("qservice_forward_duration", unit: "s", description: "Duration of one forward pass, by model (policy or reference).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        QueueWait = _meter.CreateHistogram("qservice_queue_wait", unit: "s", description: "Time an item waited in the queue before its batch started.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        DroppedItems = _meter.CreateCounter<long>("qservice_dropped_items", unit: "{item}", description: "Queued items removed without computing them, by reason (cancelled: the caller left or its deadline passed).");
        Batches = _meter.CreateCounter<long>("qservice_batches", unit: "{batch}", description: "Forward passes run (each over both models).");
        PrefixHitTokens = _meter.CreateCounter<long>("qservice_prefix_cache_hit_tokens", unit: "{token}", description: "Tokens served from the prefix cache instead of computed, by model.");
        PrefixComputedTokens = _meter.CreateCounter<long>("qservice_prefix_cache_computed_tokens", unit: "{token}", description: "Tokens run through a model (not served from the prefix cache), by model.");
        PrefixEvictions = _meter.CreateCounter<long>("qservice_prefix_cache_evictions", unit: "{block}", description: "Prefix cache blocks evicted to stay within PrefixCache:MaxBytes, by model.");
        _meter.CreateObservableGauge("qservice_prefix_cache_bytes", () => PrefixCacheBytes(), unit: "By", description: "Bytes held by the prefix cache, by model.");
    }

    public void Dispose()
    {
        _meter.Dispose();
        Activities.Dispose();
    }
}
