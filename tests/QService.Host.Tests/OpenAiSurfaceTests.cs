using System.Net;
using System.Text.Json;

namespace QService.Host.Tests;

/// <summary>The OpenAI-compatible routes' surface on the demo pair: models, the remote tokenizer, errors, metrics, logs and README's examples.</summary>
[Collection(nameof(DefaultServerCollection))]
public class OpenAiSurfaceTests(DefaultServer fixture)
{
    [Fact]
    public async Task Models_ListThePolicyTheReferenceAndTheGuidedMix()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var models = await client.Get("/v1/models");
        Assert.Equal("list", models.GetProperty("object").GetString());
        var ids = models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["policy", "reference", "guided"], ids);
        Assert.All(models.GetProperty("data").EnumerateArray(), m => Assert.Equal("model", m.GetProperty("object").GetString()));
        Assert.Equal("reference", (await client.Get("/v1/models/reference")).GetProperty("qservice").GetProperty("role").GetString());
        var (status, _) = await client.Send(HttpMethod.Get, "/v1/models/nope");
        Assert.Equal(HttpStatusCode.NotFound, status);
    }

    [Fact]
    public async Task RemoteTokenizer_AsLmEvalUsesIt()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var info = await client.Get("/tokenizer_info");
        var modelInfo = await fixture.Server.Channel.Scorer.GetModelInfoAsync(new Protos.V1.GetModelInfoRequest());
        Assert.Equal(modelInfo.MaxContext, info.GetProperty("max_model_len").GetInt32());
        // RemoteTokenizer.eos_token_id = encode(eos_token)[0], with add_special_tokens false.
        string eos = info.GetProperty("eos_token").GetString()!;
        var encoded = await client.Post("/tokenize", new { prompt = eos, add_special_tokens = false });
        Assert.Equal(modelInfo.EosTokenId, encoded.GetProperty("tokens")[0].GetInt32());
        const string text = "Review of the phone: The battery is long.";
        var tokens = await client.Post("/tokenize", new { prompt = text, add_special_tokens = false });
        Assert.Equal(tokens.GetProperty("tokens").GetArrayLength(), tokens.GetProperty("count").GetInt32());
        var decoded = await client.Post("/detokenize", new { tokens = OpenAiHttp.Ints(tokens.GetProperty("tokens")) });
        Assert.Equal(text, decoded.GetProperty("prompt").GetString());
        // With special tokens, the prompt as Score tokenizes it.
        var withBos = await client.Post("/tokenize", new { prompt = text });
        var scored = await fixture.Server.Channel.Scorer.ScoreAsync(new Protos.V1.ScoreRequest
        {
            Items = { new Protos.V1.ScoreItem { Prompt = text, Response = " ok" } },
        });
        Assert.Equal(scored.Results[0].PromptTokens, withBos.GetProperty("count").GetInt32());
        Assert.Equal("tokens", (await client.Error("/detokenize", """{"tokens":[1,99999]}""", HttpStatusCode.BadRequest)).GetProperty("param").GetString());
    }

    [Fact]
    public async Task Errors_HaveOpenAisShapeAndStatus_AndAreCountedAndLoggedUnderTheirRoute()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var notFound = await client.Error("/v1/completions", """{"model":"gpt-4","prompt":"x"}""", HttpStatusCode.NotFound);
        Assert.Equal("model_not_found", notFound.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", notFound.GetProperty("type").GetString());
        Assert.Equal("prompt", (await client.Error("/v1/completions", """{"prompt":{"a":1}}""", HttpStatusCode.BadRequest)).GetProperty("param").GetString());
        Assert.Equal("alpha", (await client.Error("/v1/completions", """{"model":"guided","prompt":"x"}""", HttpStatusCode.BadRequest))
            .GetProperty("param").GetString());
        Assert.Equal("logprobs", (await client.Error("/v1/completions", """{"prompt":"x","logprobs":99}""", HttpStatusCode.BadRequest))
            .GetProperty("param").GetString());
        Assert.Equal("temperature", (await client.Error("/v1/completions", """{"prompt":"x","temperature":-1}""", HttpStatusCode.BadRequest))
            .GetProperty("param").GetString());
        Assert.Equal("max_tokens", (await client.Error("/v1/completions", """{"prompt":"x","max_tokens":100000}""", HttpStatusCode.BadRequest))
            .GetProperty("param").GetString());
        Assert.Equal("prompt", (await client.Error("/v1/completions", """{"prompt":[[1, 99999]]}""", HttpStatusCode.BadRequest))
            .GetProperty("param").GetString());
        Assert.Equal("n", (await client.Error("/v1/completions", """{"prompt":"x","echo":true,"max_tokens":0,"n":1000000000}""",
            HttpStatusCode.BadRequest)).GetProperty("param").GetString());
        var prompts = JsonSerializer.Serialize(new { prompt = Enumerable.Repeat("x", 300), max_tokens = 0 });
        Assert.Contains("more than the limit", (await client.Error("/v1/completions", prompts, HttpStatusCode.TooManyRequests))
            .GetProperty("message").GetString());
        Assert.Contains("not valid JSON", (await client.Error("/v1/completions", "{nope", HttpStatusCode.BadRequest)).GetProperty("message").GetString());
        Assert.Equal("presence_penalty", (await client.Error("/v1/completions", """{"prompt":"x","presence_penalty":1}""", HttpStatusCode.BadRequest))
            .GetProperty("param").GetString());
        // A body past the limit is refused before it is read whole.
        var huge = await client.Error("/v1/completions", $$"""{"prompt":"{{new string('a', 10 << 20)}}"}""", HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("larger than the limit", huge.GetProperty("message").GetString());
        // The routes are on the API port only.
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Server.Http.GetAsync("/tokenizer_info")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Server.Http.GetAsync("/v1/models")).StatusCode);

        await client.Post("/v1/completions", new { prompt = "Review of the phone:", max_tokens = 2 });
        var metrics = PrometheusText.Parse(await fixture.Server.Http.GetStringAsync("/metrics"));
        Assert.True(metrics.Value("qservice_requests_total", ("rpc", "/v1/completions"), ("status", "OK")) >= 1);
        Assert.True(metrics.Value("qservice_requests_total", ("rpc", "/v1/completions"), ("status", "NotFound")) >= 1);
        Assert.True(metrics.Value("qservice_requests_total", ("rpc", "/v1/completions"), ("status", "InvalidArgument")) >= 1);
        await Polling.Until(() => Task.FromResult(fixture.Server.Output.Contains("/v1/completions OK items=1")), TimeSpan.FromSeconds(10),
            () => $"no log line for /v1/completions in {fixture.Server.Output[^2000..]}");
    }

    [Fact]
    public async Task ChatCompletions_WithoutAChatTemplate_AreRefusedNamingMessages()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var error = await client.Error("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}]}""", HttpStatusCode.BadRequest);
        Assert.Equal("messages", error.GetProperty("param").GetString());
        Assert.Contains("chat template", error.GetProperty("message").GetString());
        var empty = await client.Error("/v1/chat/completions", """{"messages":[]}""", HttpStatusCode.BadRequest);
        Assert.Equal("messages", empty.GetProperty("param").GetString());
    }

    [Fact]
    public async Task ReadmesOpenAiExamples_Work_AsWritten()
    {
        var expectedKeys = new (string Route, string[] Keys)[]
        {
            ("/v1/models", ["data"]), ("/v1/completions", ["choices", "usage"]), ("/v1/chat/completions", []),
            ("/tokenizer_info", ["eos_token"]), ("/tokenize", ["tokens", "count"]), ("/detokenize", ["prompt"]),
        };
        var examples = ReadmeExamples.Block("openai-examples");
        foreach (var (route, _) in expectedKeys) Assert.Contains(examples, e => e.Contains($"50052{route}"));
        foreach (var example in examples)
        {
            string output = await ReadmeExamples.RunAsync(example, fixture.Server.ApiPort);
            var (route, keys) = expectedKeys
                .Where(k => example.Contains($"50052{k.Route} ") || example.Contains($"50052{k.Route}'") || example.EndsWith(k.Route))
                .OrderByDescending(k => k.Route.Length).First();
            // A stream's events carry JSON after "data: "; the others are one JSON document.
            var json = JsonDocument.Parse(output.StartsWith("data: ") ? output.Split("\n\n")[0]["data: ".Length..] : output).RootElement;
            if (route == "/v1/chat/completions")
            {
                // The demo pair has no chat template: the example shows the refusal until it has one, then an answer.
                Assert.True(json.TryGetProperty("choices", out _) || json.GetProperty("error").GetProperty("param").GetString() == "messages", output);
                continue;
            }
            foreach (var key in keys) Assert.True(json.TryGetProperty(key, out _), $"{example}: no '{key}' in {output}");
        }
    }
}
