namespace QService.Cli.Commands;

/// <summary>
/// A progress line for long commands, redrawn in place on stderr at most five times a second; nothing at all
/// when stderr is not a terminal, so logs, pipes and --json output stay clean.
/// </summary>
sealed class TerminalProgress(string label, int total) : IDisposable
{
    readonly bool _shown = !Console.IsErrorRedirected;
    int _done;
    long _drawnAt;

    public void Advance() => Show(Interlocked.Increment(ref _done));

    /// <summary>Sets how far it is (e.g. seconds elapsed of a timed run).</summary>
    public void Show(int done)
    {
        if (!_shown) return;
        long now = Environment.TickCount64;
        if (done < total && now - Interlocked.Read(ref _drawnAt) < 200) return;
        Interlocked.Exchange(ref _drawnAt, now);
        lock (this) Console.Error.Write($"\r{label}: {done}/{total} ");
    }

    public void Dispose()
    {
        if (_shown) Console.Error.Write("\r" + new string(' ', label.Length + 24) + "\r");
    }
}
