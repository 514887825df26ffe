using System.Text.Json;

namespace QService.Host.Tests;

/// <summary>`qservice soak` for a minute against a server of its own: memory flat after warm-up, no errors.</summary>
public class SoakTests
{
    [Fact]
    public async Task AMinuteOfSaturationTraffic_LeavesMemoryAndLiveTensorsFlat_WithNoErrors()
    {
        // A small prefix cache: it fills (and evicts) within the warm-up, so later growth would be a leak.
        await using var server = await ServerProcess.StartServingAsync("--PrefixCache:MaxBytes=8000000");
        var (code, stdout, stderr) = await CliTests.Run("soak", "--server", $"http://127.0.0.1:{server.GrpcPort}", "--metrics", $"http://127.0.0.1:{server.HttpPort}",
            "--minutes", "1", "--warmup-seconds", "20", "--every-seconds", "5", "--callers", "4", "--json");
        Assert.True(code == 0, stderr);
        var report = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(0, report.GetProperty("errors").GetInt64());
        double growth = report.GetProperty("resident_growth").GetDouble();
        Assert.True(growth < 0.05, $"resident memory grew {growth:P1} after the warm-up: {stdout}");
        Assert.True(report.GetProperty("live_tensors_at_end").GetDouble() <= report.GetProperty("live_tensors_after_warmup").GetDouble() * 1.05, stdout);
        Assert.True(report.GetProperty("tokens_per_second").GetDouble() > 0);
    }
}
