namespace QService.Engine;

/// <summary>What the health endpoints report, decided from the engine's state (pure, so that each rule is tested on its own).</summary>
public static class EngineHealth
{
    /// <summary>
    /// Ready to take traffic: models loaded and warmed up, not shutting down, and fewer than
    /// <paramref name="threshold"/> forward passes failed in a row (ready again after a good one).
    /// </summary>
    /// <param name="loading">what is loading and how far (e.g. "the policy: 1.20 of 13.48 GB"), while it is</param>
    public static (bool Ready, string Reason) Readiness(TaskStatus load, string? loadError, bool draining, int consecutiveFailures,
        string? lastFailure, int threshold,
        string? loading = null) =>
        load switch
        {
            TaskStatus.Faulted => (false, $"models failed to load: {loadError}"),
            not TaskStatus.RanToCompletion => (false, loading is null ? "models are loading" : $"models are loading: {loading}"),
            _ when draining => (false, "shutting down: finishing accepted work, taking no new work"),
            _ when consecutiveFailures >= threshold =>
                (false, $"{consecutiveFailures} forward passes failed in a row (last: {lastFailure}); ready again after a pass succeeds"),
            _ => (true, "models loaded and warmed up"),
        };

    /// <summary>
    /// Alive unless a forward pass or decoding step has run longer than the bound: then it is taken as hung and the
    /// process should be restarted.
    /// </summary>
    public static (bool Alive, string Reason) Liveness(TimeSpan? busyFor, double maxPassSeconds) =>
        busyFor is { } busy && busy.TotalSeconds > maxPassSeconds
            ? (false, $"a forward pass has been running for {busy.TotalSeconds:F0} s, more than Batching:MaxPassSeconds={maxPassSeconds}; restart the process")
            : (true, "ok");
}
