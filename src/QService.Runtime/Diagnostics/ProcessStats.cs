namespace QService.Runtime.Diagnostics;

/// <summary>This process's resident memory and page faults, from /proc (Linux); elsewhere what .NET offers.</summary>
public static class ProcessStats
{
    /// <summary>Resident set size in bytes.</summary>
    public static long ResidentBytes()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return self.WorkingSet64;
    }

    /// <summary>Minor page faults so far (memory faulted in without disk I/O), or 0 where /proc is absent.</summary>
    public static long MinorFaults()
    {
        const string stat = "/proc/self/stat";
        if (!File.Exists(stat)) return 0;
        // Fields after the parenthesised command name: state ppid pgrp session tty tpgid flags minflt ...
        string text = File.ReadAllText(stat);
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
    }
}
