using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QService.Engine.Telemetry;

namespace QService.Engine.Batching;

/// <summary>
/// Failed forward passes and decoding steps: counted by reason, the current run of consecutive failures kept
/// for readiness, and turned into what a caller may see: a generic message with the id under which the
/// details (LibTorch's text, paths) are logged, never the details themselves.
/// </summary>
internal sealed class PassFailures(EngineTelemetry telemetry, ILogger logger)
{
    volatile int _consecutive;
    volatile string? _lastReason;

    public int Consecutive => _consecutive;
    public string? LastReason => _lastReason;

    public void Succeeded() => _consecutive = 0;

    /// <summary>LibTorch reports exhausted memory as an ordinary error with one of these texts.</summary>
    public static bool IsOutOfMemory(Exception e) => e is OutOfMemoryException
        || e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("not enough memory", StringComparison.OrdinalIgnoreCase);

    static string Reason(Exception e) => IsOutOfMemory(e) ? "out_of_memory" : "error";

    /// <summary>An out-of-memory pass about to be retried in halves: counted and logged, its items not failed.</summary>
    public void Splitting(Exception e, int items)
    {
        telemetry.FailedPasses.Add(1, new KeyValuePair<string, object?>("reason", "out_of_memory"));
        logger.LogWarning("A forward pass of {Items} items ran out of memory ({Message}); retrying it in halves", items, e.Message);
    }

    /// <summary>Records a failure and returns the error its callers get.</summary>
    public ScoringException Failed(Exception e, string what, IEnumerable<ActivityContext> requests)
    {
        string reason = Reason(e);
        telemetry.FailedPasses.Add(1, new KeyValuePair<string, object?>("reason", reason));
        _consecutive++;
        _lastReason = reason;
        string incident = requests.Where(r => r != default).Select(r => r.TraceId.ToHexString()).FirstOrDefault()
            ?? Convert.ToHexString(Guid.NewGuid().ToByteArray()[..8]).ToLowerInvariant();
        logger.LogError(e, "{What} failed ({Reason}); incident {Incident}: {Message}", what, reason, incident, e.Message);
        return new ScoringException(ScoringErrorKind.Internal,
            $"{what} failed on the server ({reason.Replace('_', ' ')}); the details are logged under id {incident}");
    }
}
