using System.Net;
using System.Text;
using System.Text.Json;

namespace QService.Host.Tests;

/// <summary>The JSON API: README's curl examples run as written against the real server, and gRPC statuses as HTTP codes.</summary>
[Collection(nameof(DefaultServerCollection))]
public class HttpJsonTests(DefaultServer fixture)
{
    [Fact]
    public async Task ReadmesCurlExamples_Work_AsWritten()
    {
        var examples = ReadmeExamples.Block("http-examples");
        Assert.Equal(4, examples.Count);
        var expectedKeys = new Dictionary<string, string[]>
        {
            ["/v1/model-info"] = ["policyModel", "vocabSize", "maxContext", "eosTokenId"],
            ["/v1/score"] = ["results", "beta"],
            ["/v1/next-tokens"] = ["results"],
            ["/v1/sample"] = ["samples", "seed", "prefixTokens"],
        };
        foreach (var example in examples)
        {
            string output = await ReadmeExamples.RunAsync(example, fixture.Server.ApiPort);
            var json = JsonDocument.Parse(output).RootElement;
            var route = expectedKeys.Keys.Single(r => example.Contains(r + " ") || example.Contains(r + "'") || example.EndsWith(r));
            foreach (var key in expectedKeys[route]) Assert.True(json.TryGetProperty(key, out _), $"{route}: no '{key}' in {output}");
        }
    }

    [Fact]
    public async Task TheJsonApi_GivesTheNumbersOfGrpc_AndItsStatusesAsHttpCodes()
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{fixture.Server.ApiPort}") };
        async Task<(HttpStatusCode Code, JsonElement Body)> Post(string route, string body)
        {
            var response = await http.PostAsync(route, new StringContent(body, Encoding.UTF8, "application/json"));
            return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
        }
        var (ok, scored) = await Post("/v1/score", """{"items":[{"prompt":"Review of the phone:","response":" The battery is long."}]}""");
        Assert.Equal(HttpStatusCode.OK, ok);
        var grpc = await fixture.Server.Channel.Scorer.ScoreAsync(new Protos.V1.ScoreRequest
        {
            Items = { new Protos.V1.ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } },
        });
        Assert.Equal(grpc.Results[0].Reward, scored.GetProperty("results")[0].GetProperty("reward").GetDouble(), 1e-5);

        var (invalid, error) = await Post("/v1/score", """{"items":[]}""");
        Assert.Equal(HttpStatusCode.BadRequest, invalid);
        Assert.Equal(3, error.GetProperty("code").GetInt32());
        Assert.Contains("no items", error.GetProperty("message").GetString());
        var (badJson, _) = await Post("/v1/sample", """{"item": 5}""");
        Assert.Equal(HttpStatusCode.BadRequest, badJson);
        // The management routes are not on the API port, nor the API on the management port.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Server.Http.GetAsync("/v1/model-info")).StatusCode);
    }
}
