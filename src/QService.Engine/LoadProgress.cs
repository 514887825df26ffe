using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace QService.Engine;

/// <summary>
/// Progress of loading the pair's weights: a line in the log when a model starts, every few seconds while it
/// loads (bytes and rate), and when it is done; and the same as one sentence for readiness.
/// </summary>
internal sealed class LoadProgress(ILogger logger, double logEverySeconds = 5)
{
    string? _role;
    readonly Stopwatch _clock = new();
    double _loggedAt;

    /// <summary>Records how far a model has loaded; returns the sentence readiness shows.</summary>
    public string Report(string role, long done, long total)
    {
        if (role != _role)
        {
            (_role, _loggedAt) = (role, 0);
            _clock.Restart();
            logger.LogInformation("Loading the {Role:l}'s weights: {Total:F2} GB", role, total / 1e9);
        }
        double seconds = _clock.Elapsed.TotalSeconds;
        double rate = seconds > 0 ? done / 1e6 / seconds : 0;
        string status = $"the {role}: {Math.Min(done, total) / 1e9:F2} of {total / 1e9:F2} GB ({rate:F0} MB/s)";
        if (done >= total)
            logger.LogInformation("Loaded the {Role:l}'s weights: {Total:F2} GB in {Seconds:F1} s ({Rate:F0} MB/s)", role, total / 1e9, seconds, rate);
        else if (seconds - _loggedAt >= logEverySeconds)
        {
            _loggedAt = seconds;
            logger.LogInformation("Loading {Status:l}", status);
        }
        return status;
    }
}
