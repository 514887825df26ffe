using System.Net;
using System.Text;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>Traces over OTLP HTTP/protobuf, received by a collector stand-in started here.</summary>
public class OtlpTraceTests
{
    [Fact]
    public async Task AScoreCall_ExportsItsRpcQueueWaitAndForwardSpans_OverOtlpHttp()
    {
        int port = ServerProcess.FreePort();
        using var receiver = new HttpListener();
        receiver.Prefixes.Add($"http://127.0.0.1:{port}/");
        receiver.Start();
        var exports = new List<string>();
        var receiving = Task.Run(async () =>
        {
            while (receiver.IsListening)
            {
                HttpListenerContext context;
                try { context = await receiver.GetContextAsync(); } catch (HttpListenerException) { return; } catch (ObjectDisposedException) { return; }
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                // Protobuf keeps strings as UTF-8 bytes: names and attribute keys can be found in the raw body.
                lock (exports) exports.Add($"{context.Request.Url!.AbsolutePath} {context.Request.ContentType} {Encoding.UTF8.GetString(body.ToArray())}");
                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        });
        var environment = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        };
        await using var server = ServerProcess.Start(environment);
        Assert.True(await server.Channel.WaitUntilServingAsync(TimeSpan.FromSeconds(120)), server.Output);
        await server.Channel.Scorer.ScoreAsync(
            new ScoreRequest { Items = { new ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } } });

        string[] expected = ["/v1/traces", "application/x-protobuf", "qservice.v1.QScorer/Score", "queue wait", "forward policy", "forward reference",
            "qservice.model", "qservice.batch.sequences"];
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string all = "";
        while (DateTime.UtcNow < deadline)
        {
            lock (exports) all = string.Join("\n", exports);
            if (expected.All(all.Contains)) break;
            await Task.Delay(200);
        }
        foreach (var text in expected) Assert.True(all.Contains(text), $"no '{text}' in what the collector received");
        receiver.Stop();
    }
}
