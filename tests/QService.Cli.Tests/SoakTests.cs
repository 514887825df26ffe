using System.Text.Json;

namespace QService.Cli.Tests;

/// <summary>`qservice soak` for a minute against a server of its own: memory on a plateau after warm-up, live tensors exact, no errors.</summary>
public class SoakTests
{
    [Fact]
    public async Task AMinuteOfSaturationTraffic_LeavesMemoryOnAPlateauAndLiveTensorsExact_WithNoErrors()
    {
        // A small prefix cache: it fills (and evicts) within the warm-up, so later growth would be a leak.
        await using var server = await ServerProcess.StartServingAsync("--PrefixCache:MaxBytes=8000000");
        var (code, stdout, stderr) = await CliProcess.Run("soak", "--server", $"http://127.0.0.1:{server.GrpcPort}",
            "--metrics", $"http://127.0.0.1:{server.HttpPort}",
            "--minutes", "1", "--warmup-seconds", "20", "--every-seconds", "5", "--callers", "4", "--json");
        Assert.True(code == 0, stderr);
        var report = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(0, report.GetProperty("errors").GetInt64());
        // A leak grows steadily: as much in the second half of the measured 40 s as in the first. The allocator's
        // settling (arenas, thread stacks, the cache filling) happens early and then stops; the GC's allocation
        // budget moves resident memory by a few MB either way (2 % in one of three 2-minute soaks, README).
        double late = report.GetProperty("resident_late_growth").GetDouble();
        Assert.True(late < 0.03, $"resident memory still grew {late:P1} in the second half of the measured time: {stdout}");
        double growth = report.GetProperty("resident_growth").GetDouble();
        Assert.True(growth < 0.10, $"resident memory grew {growth:P1} after the warm-up: {stdout}");
        // At rest (no call in flight, the cache full) the model thread holds exactly the same tensors.
        Assert.Equal(report.GetProperty("live_tensors_after_warmup").GetDouble(), report.GetProperty("live_tensors_at_end").GetDouble());
        Assert.True(report.GetProperty("tokens_per_second").GetDouble() > 0);
    }
}
