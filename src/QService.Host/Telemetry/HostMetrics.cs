using System.Diagnostics;
using System.Diagnostics.Metrics;
using QService.Engine;

namespace QService.Host.Telemetry;

/// <summary>The host's own metrics: per-RPC counts and durations, and the model-info gauge.</summary>
public sealed class HostMetrics : IDisposable
{
    public const string MeterName = "QService.Host";

    readonly Meter _meter = new(MeterName);
    readonly Counter<long> _requests;
    readonly Histogram<double> _duration;

    public HostMetrics(ScoringEngine engine)
    {
        _requests = _meter.CreateCounter<long>("qservice_requests", unit: "{request}",
            description: "RPC requests (stream messages count one each), by RPC and gRPC status.");
        _duration = _meter.CreateHistogram("qservice_request_duration", unit: "s", description: "RPC request duration, by RPC and gRPC status.",
            advice: new InstrumentAdvice<double>
                { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        // Value 1 with the models as labels, the Prometheus "info" idiom; absent until the models are loaded.
        _meter.CreateObservableGauge("qservice_model_info", () => ModelInfo(engine), unit: "1",
            description: "The models being served (value 1; see the labels).");
        _meter.CreateObservableGauge("qservice_ready", () => engine.Readiness.Ready ? 1 : 0, unit: "1",
            description: "1 when /readyz reports ready (models loaded, not draining, passes not failing in a row), else 0.");
        // What a soak watches for leaks: native memory, the managed heap, and tensors the model thread holds.
        _meter.CreateObservableGauge("qservice_resident_memory", Runtime.Diagnostics.ProcessStats.ResidentBytes, unit: "By",
            description: "Resident memory of the process.");
        _meter.CreateObservableGauge("qservice_managed_heap", () => GC.GetGCMemoryInfo().HeapSizeBytes, unit: "By",
            description: "Managed heap after the last garbage collection.");
        _meter.CreateObservableGauge("qservice_live_tensors", () => engine.LiveTensors, unit: "{tensor}",
            description: "Tensors alive on the model thread (caches and decoding state included), after its last pass.");
    }

    static IEnumerable<Measurement<int>> ModelInfo(ScoringEngine engine)
    {
        if (!engine.IsReady) yield break;
        var info = engine.Info;
        // One series per policy (labelled with its served name) and one for the reference.
        var models = info.Policies.Select(p => ("policy", p.Name, p.Model, p.Architecture, p.Adapter is null ? "" : p.Adapter.Description))
            .Append(("reference", "", info.ReferenceName, info.ReferenceArchitecture, ""));
        foreach (var (role, policy, name, arch, adapter) in models)
            yield return new Measurement<int>(1, new("role", role), new("policy", policy), new("name", name), new("architecture", arch),
                new("adapter", adapter), new("dtype", info.Dtype), new("device", info.Device));
    }

    public void Record(string rpc, string status, TimeSpan elapsed)
    {
        var tags = new TagList { { "rpc", rpc }, { "status", status } };
        _requests.Add(1, tags);
        _duration.Record(elapsed.TotalSeconds, tags);
    }

    public void Dispose() => _meter.Dispose();
}
