using System.Diagnostics;
using System.Text.Json;
using QService.Protos.V1;

namespace QService.Deployment.Tests;

/// <summary>A real Prometheus server (Debian's package) scrapes the real service and answers queries about it.</summary>
[Collection(nameof(DefaultServerCollection))]
public class PrometheusScrapeTests(DefaultServer fixture)
{
    [Fact]
    public async Task Prometheus_ScrapesTheManagementPort_AndSeesTheRequests()
    {
        var server = fixture.Server;
        for (int i = 0; i < 3; i++)
            await server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = "Hi", Response = $" there {i}" } } });

        using var folder = new TempFolder();
        int webPort = ServerProcess.FreePort();
        File.WriteAllText(folder.File("prometheus.yml"), $$"""
            global: { scrape_interval: 1s, evaluation_interval: 1s }
            scrape_configs:
              - job_name: qservice
                static_configs: [ { targets: ['127.0.0.1:{{server.HttpPort}}'] } ]
            """);
        var psi = new ProcessStartInfo("prometheus")
        {
            ArgumentList = { $"--config.file={folder.File("prometheus.yml")}", $"--storage.tsdb.path={folder.File("data")}",
                $"--web.listen-address=127.0.0.1:{webPort}" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var prometheus = Process.Start(psi)
            ?? throw new InvalidOperationException("prometheus not found: install Debian's prometheus package (tests/run.sh does)");
        var log = new System.Text.StringBuilder();
        prometheus.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        prometheus.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{webPort}") };
            double requests = 0;
            string up = "";
            for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline && requests < 3; await Task.Delay(500))
            {
                try
                {
                    up = await Query(http, "up{job=\"qservice\"}") ?? "";
                    requests = double.Parse(await Query(http, "sum(qservice_requests_total{rpc=\"Score\",status=\"OK\"})") ?? "0",
                        System.Globalization.CultureInfo.InvariantCulture);
                }
                catch (HttpRequestException) { /* not listening yet */ }
            }
            Assert.True(up == "1", $"target not up; prometheus log:\n{log}");
            Assert.True(requests >= 3, $"Prometheus saw {requests} Score requests; log:\n{log}");
            var quantile = await Query(http, "histogram_quantile(0.5, sum by (le) (qservice_request_duration_seconds_bucket{rpc=\"Score\"}))");
            Assert.NotNull(quantile);
            Assert.True(double.Parse(quantile!, System.Globalization.CultureInfo.InvariantCulture) > 0);
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync();
        }
    }

    /// <summary>The value of the first sample of an instant query, or null when it has none.</summary>
    static async Task<string?> Query(HttpClient http, string promql)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync($"/api/v1/query?query={Uri.EscapeDataString(promql)}"));
        var result = doc.RootElement.GetProperty("data").GetProperty("result");
        return result.GetArrayLength() == 0 ? null : result[0].GetProperty("value")[1].GetString();
    }
}
