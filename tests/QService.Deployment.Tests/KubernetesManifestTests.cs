using System.Diagnostics;

namespace QService.Deployment.Tests;

/// <summary>deploy/k8s rendered with kubectl kustomize, base and GPU overlay, checked for what a cluster relies on.</summary>
[Collection(nameof(DefaultServerCollection))]
public partial class KubernetesManifestTests(DefaultServer fixture)
{
    static async Task<string> Render(string folder)
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "kustomize", Path.Combine(Fixtures.RepoRoot, "deploy", "k8s", folder) }) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)
            ?? throw new InvalidOperationException("kubectl not found: install Debian's kubernetes-client (tests/run.sh does)");
        string output = await process.StandardOutput.ReadToEndAsync();
        string errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, errors);
        return output;
    }

    [Fact]
    public async Task TheBase_ProbesTheManagementPort_DrainsBeforeItIsKilled_RunsLockedDown_AndScalesOnAMetricTheServiceExports()
    {
        string yaml = await Render("base");
        foreach (var kind in new[] { "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "HorizontalPodAutoscaler", "ConfigMap" })
            Assert.Contains($"kind: {kind}\n", yaml);
        Assert.Contains("clusterIP: None", yaml); // the headless Service for client-side balancing
        Assert.Contains("containerPort: 8080\n          name: http", yaml);
        foreach (var probe in new[] { "startupProbe", "readinessProbe" })
            Assert.Matches($@"{probe}:\s+(failureThreshold: \d+\s+)?httpGet:\s+path: /readyz\s+port: http", yaml);
        Assert.Matches(@"livenessProbe:\s+failureThreshold: \d+\s+httpGet:\s+path: /healthz\s+port: http", yaml);
        int grace = int.Parse(System.Text.RegularExpressions.Regex.Match(yaml, @"terminationGracePeriodSeconds: (\d+)").Groups[1].Value);
        int drain = int.Parse(System.Text.RegularExpressions.Regex.Match(yaml, @"QSERVICE__SERVER__DRAINSECONDS\s+value: ""(\d+)""").Groups[1].Value);
        Assert.True(grace > drain, $"terminationGracePeriodSeconds {grace} must exceed the drain of {drain} s");
        Assert.Contains("runAsNonRoot: true", yaml);
        Assert.Contains("readOnlyRootFilesystem: true", yaml);
        // The HPA's metric, and the series the prometheus-adapter rule turns into it, are in a real scrape of the server.
        string hpaMetric = HpaMetric().Match(yaml).Groups["name"].Value;
        string adapterSeries = AdapterSeries().Match(yaml).Groups["name"].Value;
        Assert.False(string.IsNullOrEmpty(hpaMetric), "the HorizontalPodAutoscaler names no pods metric");
        Assert.Equal(hpaMetric, adapterSeries); // the adapter serves the HPA's metric from the series of that name
        var scrape = (await fixture.Server.Http.GetStringAsync("/metrics")).Split('\n');
        Assert.Contains(scrape, line => line.StartsWith(hpaMetric + "{", StringComparison.Ordinal)
            || line.StartsWith(hpaMetric + " ", StringComparison.Ordinal));
        Assert.DoesNotContain("nvidia.com/gpu", yaml);
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"kind: HorizontalPodAutoscaler[\s\S]*?- pods:\s+metric:\s+name: (?<name>[a-z_]+)")]
    private static partial System.Text.RegularExpressions.Regex HpaMetric();

    [System.Text.RegularExpressions.GeneratedRegex(@"seriesQuery: '(?<name>[a-z_]+)\{")]
    private static partial System.Text.RegularExpressions.Regex AdapterSeries();

    [Fact]
    public async Task TheGpuOverlay_RequestsAGpu_AndRunsTheCudaImageOnCuda()
    {
        string yaml = await Render("overlays/gpu");
        Assert.Contains("nvidia.com/gpu: 1", yaml);
        Assert.Contains("image: qservice:cuda", yaml);
        Assert.Matches(@"name: QSERVICE__MODELS__DEVICE\s+value: cuda", yaml);
        Assert.Contains("path: /readyz", yaml); // the base's probes are still there
    }
}
