namespace QService.Cli.Commands.Eval;

/// <summary>
/// Progress of an evaluation on stderr: on a terminal a bar redrawn in place with rows done, pairs per second and the
/// time left; otherwise (a log, CI) one plain line every <see cref="LineSeconds"/> seconds. The rate counts this run's
/// rows only, so that a resumed run's ETA is not flattered by the rows it skipped.
/// </summary>
sealed class EvalProgress(long total, long skippedRows, bool terminal) : IDisposable
{
    readonly long skipped = skippedRows;
    public const double LineSeconds = 5;
    readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    long _done = skippedRows;
    double _shownAt = double.NegativeInfinity;

    public void Advance()
    {
        _done++;
        double now = _clock.Elapsed.TotalSeconds;
        if (now - _shownAt < (terminal ? 0.2 : LineSeconds) && _done < total) return;
        _shownAt = now;
        if (terminal) Console.Error.Write("\r" + Line(now) + "   ");
        else Console.Error.WriteLine(Line(now));
    }

    string Line(double seconds)
    {
        double rate = (_done - skipped) / Math.Max(1e-9, seconds);
        string eta = rate > 0 && total > 0 ? Clock(Math.Max(0, total - _done) / rate) : "?";
        if (total <= 0) return $"eval: {_done} rows, {rate:F1} rows/s";
        double fraction = Math.Min(1, _done / (double)total);
        int filled = (int)(fraction * 30);
        string bar = terminal ? $"[{new string('#', filled)}{new string('.', 30 - filled)}] " : "";
        return $"eval: {bar}{_done}/{total} rows ({fraction:P1}), {rate:F1} rows/s, ETA {eta}";
    }

    static string Clock(double seconds) => TimeSpan.FromSeconds(Math.Round(seconds)).ToString(seconds >= 3600 ? @"h\:mm\:ss" : @"m\:ss");

    public void Dispose()
    {
        if (terminal) Console.Error.WriteLine();
    }
}
