using System.Diagnostics;
using System.Net;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>Readiness, cancellation and health: each with its own server, configured for the case.</summary>
public class LifecycleTests
{
    [Fact]
    public async Task WhileModelsLoad_HealthzIsOk_ReadyzIsNot_AndScoringIsUnavailable()
    {
        // A model file that is a FIFO blocks the loader on its first read, as a slow disk would.
        using var folder = new TempFolder();
        foreach (var f in new[] { "config.json" })
            File.Copy(Path.Combine(PairServer.PolicyPath, f), folder.File(f));
        using (var mkfifo = Process.Start("mkfifo", folder.File("model.safetensors"))) await mkfifo.WaitForExitAsync();
        await using var server = ServerProcess.Start("--policy", folder.Path, "--reference", folder.Path);
        await Polling.UntilHttpOk(server, "/healthz");

        var ready = await server.Http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("loading", await ready.Content.ReadAsStringAsync());
        var health = await server.Channel.Health.CheckAsync(new HealthCheckRequest { Service = "qservice.v1.QScorer" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, health.Status);
        var e = await Assert.ThrowsAsync<RpcException>(async () => await server.Channel.Scorer.ScoreAsync(
            new ScoreRequest { Items = { new ScoreItem { PromptTokenIds = { 1 }, ResponseTokenIds = { 2 } } } }));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("still loading", e.Status.Detail);
    }

    [Theory]
    [InlineData("--Limits:MaxItemsPerRequest=5000", "Limits:MaxItemsPerRequest (5000) is more than Batching:MaxQueueItems (4096)")]
    [InlineData("--Models:Beta=NaN", "Models:Beta is NaN; it must be a finite number > 0")]
    [InlineData("--Batching:MaxBatchTokens=1", "Batching:MaxBatchTokens is 1; it must be >= 2")]
    [InlineData("--Models:Dtype=int8", "Models:Dtype is 'int8'; use float32, bfloat16 or float16")]
    [InlineData("--bind=localhost:1", "Server:BindAddress is 'localhost:1'; use an IP address of this machine")]
    [InlineData("--Server:ManagementBindAddress=nowhere", "Server:ManagementBindAddress is 'nowhere'")]
    [InlineData("--grpc-port=70000", "Server:GrpcPort is 70000; use a port from 1 to 65535 (--grpc-port)")]
    [InlineData("--http-port=0", "Server:HttpPort is 0; use a port from 1 to 65535 (--http-port)")]
    [InlineData("--grpc-port=abc", "'Server:GrpcPort'")]
    [InlineData("--Server:DrainSeconds=-1", "Server:DrainSeconds is -1; use 0 to 3600 seconds")]
    [InlineData("--Server:KeepAlivePingSeconds=0.5", "Server:KeepAlivePingSeconds is 0.5; use 1 to 86400 seconds")]
    [InlineData("--Models:MklAvx512=false", "Models:MklAvx512 was renamed Models:MklVendorOverride")]
    [InlineData("--log-format=xml", "Server:LogFormat is 'xml'; use auto, json or text")]
    public async Task InconsistentSettings_StopTheProcessAtStartUp_WithTheReason(string setting, string reason)
    {
        await using var server = ServerProcess.Start(setting);
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains(reason, server.Output);
        Assert.DoesNotContain("   at ", server.Output); // one line, no stack trace
    }

    [Fact]
    public async Task ACertificateThatCannotBeRead_StopsTheProcessWithOneLine()
    {
        await using var server = ServerProcess.Start("--Server:TlsCertificatePath=/nonexistent/cert.pem", "--Server:TlsKeyPath=/nonexistent/key.pem");
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("qservice: invalid configuration: Server:TlsCertificatePath and Server:TlsKeyPath: ", server.Output);
        Assert.DoesNotContain("   at ", server.Output);
    }

    [Fact]
    public async Task TwoEndpointsOnOnePort_StopTheProcessAtStartUp_NamingBoth()
    {
        await using var server = ServerProcess.Start("--http-api-port", "50999", "--grpc-port", "50999");
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("Server:GrpcPort and Server:HttpApiPort are both 50999; give each endpoint its own port", server.Output);
    }

    [Fact]
    public async Task APortInUse_StopsTheProcessWithOneLine_NamingTheSettingAndThePort()
    {
        // What two servers started with different --grpc-port and --http-port met on the default JSON port.
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        await using var server = ServerProcess.Start("--http-api-port", port.ToString());
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains($"qservice: Server:HttpApiPort {port} is in use by another process on 127.0.0.1; choose another with --http-api-port, " +
            "or 0 to turn the JSON API off", server.Output);
        Assert.DoesNotContain("Unhandled exception", server.Output);
        Assert.DoesNotContain("   at ", server.Output);
    }

    [Fact]
    public async Task ABindAddressThatIsNotThisMachines_StopsTheProcessWithOneLine()
    {
        // 192.0.2.1 is reserved for documentation (TEST-NET-1): no machine has it, and binding sends nothing.
        await using var server = ServerProcess.Start("--bind", "192.0.2.1");
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains($"qservice: Server:GrpcPort {server.GrpcPort} cannot be bound: 192.0.2.1 is not an address of this machine; " +
            "set Server:BindAddress (--bind)", server.Output);
        Assert.DoesNotContain("   at ", server.Output);
    }

    [Fact]
    public async Task BFloat16OnCpu_IsRefusedWithTheReason_WhereTheCpuHasNoNativeBFloat16_AndServedWhereItHas()
    {
        await using var server = ServerProcess.Start("--dtype", "bfloat16");
        if (Runtime.Torch.CpuFeatures.Here.NativeBFloat16)
        {
            Assert.True(await server.Channel.WaitUntilServingAsync(TimeSpan.FromSeconds(120)), server.Output);
            Assert.Equal("bfloat16", (await server.Channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest())).Dtype);
            return;
        }
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("has no native bfloat16 (avx512_bf16 or amx_bf16)", server.Output);
        Assert.Contains("use --dtype float32", server.Output);
    }

    [Fact]
    public async Task ModelsThatFailToLoad_StopTheProcessWithTheReason()
    {
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), "{\"architectures\": [\"FalconForCausalLM\"]}");
        await using var server = ServerProcess.Start("--policy", folder.Path, "--reference", folder.Path);
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), server.Output);
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("FalconForCausalLM", server.Output);
        Assert.Contains("LlamaForCausalLM", server.Output);
    }

    [Fact]
    public async Task CancelledRequest_IsDroppedFromTheQueue_Uncomputed()
    {
        // A long queue delay keeps the requests queued long enough for their deadline or cancellation to come first.
        // Both leave only after 1.5 s: on a busy test machine a call abandoned sooner may never reach the handler at all.
        await using var server = await ServerProcess.StartServingAsync("--policy", PairServer.PolicyPath, "--reference", PairServer.ReferencePath,
            "--max-queue-delay-ms", "6000");
        var request = new ScoreRequest { Items = { new ScoreItem { PromptTokenIds = { 1, 2 }, ResponseTokenIds = { 3, 4 } } } };
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await server.Channel.Scorer.ScoreAsync(request, deadline: DateTime.UtcNow.AddMilliseconds(1500)));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);

        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(1500));
        e = await Assert.ThrowsAsync<RpcException>(async () => await server.Channel.Scorer.ScoreAsync(request, cancellationToken: cts.Token));
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);

        // The batcher notices the abandoned items when the delay ends, and counts them instead of computing them.
        PrometheusText metrics = PrometheusText.Parse("");
        for (var deadline = DateTime.UtcNow.AddSeconds(20); DateTime.UtcNow < deadline; await Task.Delay(200))
        {
            metrics = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics"));
            if (metrics.Value("qservice_dropped_items_total", ("reason", "cancelled")) >= 2) break;
        }
        Assert.Equal(2, metrics.Value("qservice_dropped_items_total", ("reason", "cancelled")));
        Assert.Equal(0, metrics.Value("qservice_scored_tokens_total"));

        // A request that stays is still served.
        var reply = await server.Channel.Scorer.ScoreAsync(request);
        Assert.Equal(2, reply.Results[0].Credits.Count);
    }

}
