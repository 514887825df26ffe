using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>What a careless or hostile caller sends, and how the service stops: over real sockets against the real server.</summary>
[Collection(nameof(DefaultServerCollection))]
public class HardeningTests(DefaultServer fixture)
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;

    [Fact]
    public async Task TenConcurrent60MBMessages_AreRefusedAsResourceExhausted_WithoutTheirMemory_WhileASmallRequestIsServed()
    {
        string huge = new('a', 60 * 1024 * 1024);
        long before = fixture.Server.RssBytes;
        var calls = Enumerable.Range(0, 10).Select(i => Task.Run(async () =>
        {
            var error = await Assert.ThrowsAsync<RpcException>(async () =>
                await _scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Id = $"{i}", Prompt = "p", Response = huge } } }));
            Assert.Contains("larger than the limit of 9,437,184 bytes", error.Status.Detail);
            return error.StatusCode;
        })).ToList();
        var small = await _scorer.ScoreAsync(
            new ScoreRequest { Items = { new ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } } });
        Assert.Single(small.Results);
        Assert.All(await Task.WhenAll(calls), status => Assert.Equal(StatusCode.ResourceExhausted, status));
        long grown = fixture.Server.RssBytes - before;
        Assert.True(grown < 100L * 1024 * 1024, $"the server grew by {grown / (1024 * 1024)} MB refusing them");
    }

    [Fact]
    public void LoadingTheModels_IsLoggedWithItsSizeAndRate()
    {
        Assert.Contains("Loading the policy's weights", fixture.Server.Output);
        Assert.Contains("Loaded the reference's weights", fixture.Server.Output);
    }

    [Fact]
    public async Task TextThatCannotFitTheLimits_IsRefusedBeforeTokenisation()
    {
        long before = fixture.Server.RssBytes;
        string text = new('b', 5 * 1024 * 1024); // under the message limit, far over what 128 tokens can hold
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await _scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = "p", Response = text } } }));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("need more tokens than the model context", error.Status.Detail);
        long grown = fixture.Server.RssBytes - before;
        Assert.True(grown < 100L * 1024 * 1024, $"the server grew by {grown / (1024 * 1024)} MB refusing it");
    }

    [Fact]
    public async Task AOneMegabyteId_IsRefused_WithoutBeingEchoed()
    {
        string id = new('i', 1024 * 1024);
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await _scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Id = id, Prompt = "p", Response = " r" } } }));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("its id has 1,048,576 characters, more than 256", error.Status.Detail);
        Assert.True(error.Status.Detail.Length < 300);
        Assert.DoesNotContain(new string('i', 300), fixture.Server.Output);
    }
}

/// <summary>Shutdown and switches that need a server of their own.</summary>
public class DrainAndAccessTests
{
    [Fact]
    public async Task OnSigterm_ReadinessTurns503_NewCallsAreUnavailable_AcceptedWorkCompletes_AndTheProcessExits0()
    {
        await using var server = await ServerProcess.StartServingAsync("--Server:DrainSeconds=60");
        var scorer = server.Channel.Scorer;
        // Near-uniform sampling to the end of the context: long enough to be in flight when SIGTERM arrives.
        var inFlight = Enumerable.Range(0, 4).Select(i => scorer.SampleAsync(new SampleRequest
        {
            Item = new ScoreItem { Prompt = "Review of the phone:" }, N = 16, Temperature = 50, Seed = (ulong)i,
        }).ResponseAsync).ToList();
        await Task.Delay(300);
        server.Terminate();

        // The signal reaches the host asynchronously: wait (boundedly) for the drain to begin, then check it.
        var ready = await server.Http.GetAsync("/readyz");
        for (var deadline = DateTime.UtcNow.AddSeconds(10); ready.StatusCode == System.Net.HttpStatusCode.OK && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(20);
            ready = await server.Http.GetAsync("/readyz");
        }
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("shutting down", await ready.Content.ReadAsStringAsync());
        var health = await server.Channel.Health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest { Service = "qservice.v1.QScorer" });
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing, health.Status);
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            await scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = "p", Response = " r" } } }));
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);

        foreach (var reply in await Task.WhenAll(inFlight)) Assert.Equal(16, reply.Samples.Count);
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), "the server did not exit after draining");
        Assert.Equal(0, server.ExitCode);
        Assert.Contains("Drained", server.Output);
    }

    [Fact]
    public async Task AScoreStream_EndsWhenIdle_AndPastItsMessageCap()
    {
        await using var server = await ServerProcess.StartServingAsync("--Limits:StreamIdleSeconds=1", "--Limits:MaxStreamMessages=3");
        var request = new ScoreRequest { Items = { new ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } } };

        using (var idle = server.Channel.Scorer.ScoreStream())
        {
            await idle.RequestStream.WriteAsync(request);
            Assert.True(await idle.ResponseStream.MoveNext());
            await Task.Delay(2500); // then nothing
            var error = await Assert.ThrowsAsync<RpcException>(() => idle.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
            Assert.Contains("Limits:StreamIdleSeconds", error.Status.Detail);
        }
        using var busy = server.Channel.Scorer.ScoreStream();
        for (int i = 0; i < 3; i++)
        {
            await busy.RequestStream.WriteAsync(request);
            Assert.True(await busy.ResponseStream.MoveNext());
        }
        await busy.RequestStream.WriteAsync(request);
        var capped = await Assert.ThrowsAsync<RpcException>(() => busy.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.ResourceExhausted, capped.StatusCode);
        Assert.Contains("Limits:MaxStreamMessages", capped.Status.Detail);
    }

    [Fact]
    public async Task TheManagementPort_CanListenOnAnotherAddressThanTheApi()
    {
        await using var server = await ServerProcess.StartServingAsync("--Server:ManagementBindAddress=127.0.0.2");
        using var http = new HttpClient();
        Assert.True((await http.GetAsync($"http://127.0.0.2:{server.HttpPort}/healthz")).IsSuccessStatusCode);
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync($"http://127.0.0.1:{server.HttpPort}/healthz"));
    }

    [Fact]
    public async Task ReflectionCanBeTurnedOff()
    {
        await using var server = await ServerProcess.StartServingAsync("--Server:EnableReflection=false");
        var reflection = new ServerReflection.ServerReflectionClient(Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{server.GrpcPort}"));
        using var call = reflection.ServerReflectionInfo();
        // The server ends the call at once, before any message: the service is not there.
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
    }
}
