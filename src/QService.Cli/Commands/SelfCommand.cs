using System.Diagnostics;

namespace QService.Cli.Commands;

/// <summary>Runs this qservice tool again in a child process: for measurements that need a fresh process.</summary>
static class SelfCommand
{
    /// <summary>Runs `qservice ARGS` and returns its standard output; a non-zero exit throws with its standard error.</summary>
    public static string Run(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
        // Under `dotnet qservice.dll` the process is dotnet itself, which needs the assembly first.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(SelfCommand).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var stderr = child.StandardError.ReadToEndAsync();
        string stdout = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0) throw new InvalidOperationException($"`qservice {string.Join(' ', args)}` failed: {stderr.Result.Trim()}");
        return stdout;
    }
}
