using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using QService.Protos.V1;

namespace QService.Deployment.Tests;

/// <summary>The Grafana dashboard and the Prometheus alerts: they test as Prometheus runs them, and name only metrics the service exports.</summary>
[Collection(nameof(DefaultServerCollection))]
public partial class DashboardAndAlertTests(DefaultServer fixture)
{
    static string Deploy(params string[] parts) => Path.Combine([Fixtures.RepoRoot, "deploy", .. parts]);

    [GeneratedRegex(@"qservice_[a-z_]+")]
    private static partial Regex MetricName();

    /// <summary>Counters that appear only once their event has happened (a failed pass, a cancelled sample, ...).</summary>
    static readonly string[] EventCounters = ["qservice_failed_passes_total", "qservice_sample_cancelled_tokens_total", "qservice_dropped_items_total",
        "qservice_prefix_cache_evictions_total"];

    static async Task<(int Code, string Output)> Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Deploy("prometheus") };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        string output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }

    [Fact]
    public async Task TheAlertRules_PassPromtoolsOwnTests()
    {
        var check = await Run("promtool", "check", "rules", "alerts.yml");
        Assert.True(check.Code == 0, check.Output);
        var test = await Run("promtool", "test", "rules", "alerts.test.yml");
        Assert.True(test.Code == 0, test.Output);
    }

    [Fact]
    public async Task TheDashboardAndAlerts_NameOnlyMetricsTheServiceExports()
    {
        // Traffic of every kind first, so that every histogram has been recorded.
        var scorer = fixture.Server.Channel.Scorer;
        await scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } } });
        await scorer.NextTokensAsync(new NextTokensRequest { Items = { new ScoreItem { Prompt = "Review of the phone:" } }, TopK = 3 });
        await scorer.SampleAsync(new SampleRequest { Item = new ScoreItem { Prompt = "Review of the phone:" }, N = 2, MaxNewTokens = 4 });
        string scrape = await fixture.Server.Http.GetStringAsync("/metrics");
        var exported = scrape.Split('\n').Where(l => l.StartsWith("qservice_")).Select(l => MetricName().Match(l).Value).ToHashSet();
        exported.UnionWith(EventCounters);
        string source = string.Concat(Directory.GetFiles(Path.Combine(Fixtures.RepoRoot, "src"), "*.cs", SearchOption.AllDirectories).Select(File.ReadAllText));
        foreach (var counter in EventCounters)
            Assert.Contains($"\"{counter[..^"_total".Length]}\"", source); // still an instrument of the service

        var dashboard = JsonDocument.Parse(File.ReadAllText(Deploy("grafana", "qservice.json"))).RootElement;
        var expressions = dashboard.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!)).ToList();
        Assert.True(expressions.Count >= 9);
        expressions.Add(File.ReadAllText(Deploy("prometheus", "alerts.yml")));
        foreach (var name in expressions.SelectMany(e => MetricName().Matches(e).Select(m => m.Value)).Distinct())
            Assert.True(exported.Contains(name), $"{name} is used by the dashboard or the alerts but the service does not export it");
    }
}
