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
    public Counter<long> ForwardTokens { get; }
    public Histogram<double> QueueWait { get; }
    public Counter<long> DroppedItems { get; }
    public Counter<long> Batches { get; }
    public Counter<long> PrefixHitTokens { get; }
    public Counter<long> PrefixComputedTokens { get; }
    public Counter<long> PrefixEvictions { get; }
    public Counter<long> FailedPasses { get; }
    public Counter<long> SampledTokens { get; }
    public Counter<long> SampleTokensCancelled { get; }
    public Histogram<double> DecodeStepDuration { get; }
    public Histogram<int> DecodeStepSequences { get; }
    /// <summary>Bytes held by the prefix caches, per model; set by the batcher.</summary>
    public Func<IEnumerable<Measurement<long>>> PrefixCacheBytes { get; set; } = () => [];

    public EngineTelemetry(Func<int> queueDepth)
    {
        _meter.CreateObservableGauge("qservice_queue_depth", queueDepth, unit: "{item}", description: "Items waiting for a batch.");
        BatchSequences = _meter.CreateHistogram("qservice_batch_sequences", unit: "{sequence}", description: "Sequences per forward pass.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = SequenceBuckets.Select(b => (int)b).ToArray() });
        BatchTokens = _meter.CreateHistogram("qservice_batch_tokens", unit: "{token}",
            description: "Tokens (prompt + response, padding included) per forward pass, per model.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = TokenBuckets.Select(b => (int)b).ToArray() });
        ScoredTokens = _meter.CreateCounter<long>("qservice_scored_tokens", unit: "{token}", description: "Response tokens scored (each by both models).");
        ForwardDuration = _meter.CreateHistogram("qservice_forward_duration", unit: "s",
            description: "Duration of one forward pass, by model (policy or reference) and policy name.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        ForwardTokens = _meter.CreateCounter<long>("qservice_forward_tokens", unit: "{token}",
            description: "Tokens computed by forward passes of scoring (not read from the prefix cache), by model and policy: the reference's " +
                "count shows it runs once per item however many policies score it.");
        QueueWait = _meter.CreateHistogram("qservice_queue_wait", unit: "s", description: "Time an item waited in the queue before its batch started.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        DroppedItems = _meter.CreateCounter<long>("qservice_dropped_items", unit: "{item}",
            description: "Queued items removed without computing them, by reason (cancelled: the caller left or its deadline passed).");
        Batches = _meter.CreateCounter<long>("qservice_batches", unit: "{batch}", description: "Forward passes run (each over both models).");
        PrefixHitTokens = _meter.CreateCounter<long>("qservice_prefix_cache_hit_tokens", unit: "{token}",
            description: "Tokens served from the prefix cache instead of computed, by model.");
        PrefixComputedTokens = _meter.CreateCounter<long>("qservice_prefix_cache_computed_tokens", unit: "{token}",
            description: "Tokens run through a model (not served from the prefix cache), by model.");
        PrefixEvictions = _meter.CreateCounter<long>("qservice_prefix_cache_evictions", unit: "{block}",
            description: "Prefix cache blocks evicted to stay within PrefixCache:MaxBytes, by model.");
        FailedPasses = _meter.CreateCounter<long>("qservice_failed_passes", unit: "{pass}",
            description: "Forward passes or decoding steps that failed, by reason (out_of_memory, error); an out-of-memory batch is split and retried first.");
        SampledTokens = _meter.CreateCounter<long>("qservice_sampled_tokens", unit: "{token}",
            description: "Tokens generated by Sample (each scored by both models).");
        SampleTokensCancelled = _meter.CreateCounter<long>("qservice_sample_cancelled_tokens", unit: "{token}",
            description: "Tokens a Sample call could still have generated when its caller left: never computed.");
        DecodeStepDuration = _meter.CreateHistogram("qservice_decode_step_duration", unit: "s",
            description: "Duration of one decoding step (both models, one token for every running sample).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        DecodeStepSequences = _meter.CreateHistogram("qservice_decode_step_sequences", unit: "{sequence}", description: "Samples decoded together in one step.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = SequenceBuckets.Select(b => (int)b).ToArray() });
        _meter.CreateObservableGauge("qservice_prefix_cache_bytes", () => PrefixCacheBytes(), unit: "By",
            description: "Bytes held by the prefix cache, by model.");
    }

    public void Dispose()
    {
        _meter.Dispose();
        Activities.Dispose();
    }
}
