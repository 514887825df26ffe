namespace QService.Runtime.Torch;

/// <summary>How many physical cores this process may use: intra-op threads beyond that only contend.</summary>
public static class CpuTopology
{
    /// <summary>
    /// The usable logical CPUs (affinity and container limits, as .NET counts them) divided by the hardware
    /// threads per core (SMT siblings, from sysfs on Linux); at least 1.
    /// </summary>
    public static int PhysicalCores() => Math.Max(1, Environment.ProcessorCount / ThreadsPerCore());

    static int ThreadsPerCore()
    {
        const string siblings = "/sys/devices/system/cpu/cpu0/topology/thread_siblings_list";
        if (!File.Exists(siblings)) return 1;
        try { return Math.Max(1, CountCpus(File.ReadAllText(siblings).Trim())); }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { return 1; }
    }

    /// <summary>Counts the CPUs in a sysfs list such as "0,64" or "0-1".</summary>
    public static int CountCpus(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries).Sum(part =>
    {
        var range = part.Split('-');
        return range.Length == 1 ? 1 : int.Parse(range[1]) - int.Parse(range[0]) + 1;
    });
}
