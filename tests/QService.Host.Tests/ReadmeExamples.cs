using System.Diagnostics;

namespace QService.Host.Tests;

/// <summary>README's runnable examples: the curl lines of a marked block, run with bash against a test server as written.</summary>
public static class ReadmeExamples
{
    /// <summary>The curl lines of the code block after the line starting with <c>&lt;!-- marker</c>.</summary>
    public static List<string> Block(string marker)
    {
        var lines = File.ReadAllLines(Path.Combine(Fixtures.RepoRoot, "README.md"));
        int start = Array.FindIndex(lines, l => l.StartsWith($"<!-- {marker}"));
        Assert.True(start >= 0, $"README has no {marker} block");
        return [.. lines.Skip(start + 2).TakeWhile(l => l != "```").Where(l => l.StartsWith("curl "))];
    }

    /// <summary>Runs an example against the server's API port (README writes 50052) and returns what it printed; it must exit 0.</summary>
    public static async Task<string> RunAsync(string example, int apiPort)
    {
        string command = example.Replace("127.0.0.1:50052", $"127.0.0.1:{apiPort}");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var process = Process.Start(psi)!;
        string output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{command}: exit {process.ExitCode}");
        return output;
    }
}
