using System.Net;
using System.Text.Json.Nodes;
using Grpc.Core;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>The OpenAI-compatible routes on servers of their own: behind API keys, and chat on a demo pair given a chat template.</summary>
public class OpenAiOwnServerTests
{
    static async Task<ServerProcess> StartReady(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var server = ServerProcess.Start(environment, args);
        await Polling.Until(async () => (await server.Http.GetAsync("/readyz")).IsSuccessStatusCode, TimeSpan.FromSeconds(120),
            () => $"the server did not become ready: {server.Output}");
        return server;
    }

    [Fact]
    public async Task WithApiKeys_EveryRouteNeedsTheKey_And401IsInOpenAisShape()
    {
        const string key = "openai-route-key-0123456789";
        await using var server = await StartReady(new Dictionary<string, string> { ["QSERVICE_API_KEYS"] = $"eval:{key}" });
        using var anonymous = new OpenAiHttp(server);
        using var wrong = new OpenAiHttp(server, "not-the-key-0000000000");
        using var keyed = new OpenAiHttp(server, key);
        foreach (var (route, body) in new[] { ("/v1/completions", """{"prompt":"Review of the phone:","max_tokens":1}"""),
            ("/tokenize", """{"prompt":"x"}"""), ("/detokenize", """{"tokens":[1]}"""), ("/v1/chat/completions", """{"messages":[]}""") })
        {
            var error = await anonymous.Error(route, body, HttpStatusCode.Unauthorized);
            Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            await wrong.Error(route, body, HttpStatusCode.Unauthorized);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.Send(HttpMethod.Get, "/v1/models")).Status);
        Assert.Equal(HttpStatusCode.OK, (await keyed.Send(HttpMethod.Get, "/v1/models")).Status);
        await keyed.Post("/v1/completions", new { prompt = "Review of the phone:", max_tokens = 1 });
        Assert.DoesNotContain(key, server.Output);
    }

    [Fact]
    public async Task WhileTheModelsLoad_TheRoutesAnswer503_InOpenAisShape()
    {
        // The demo policy with its weights a FIFO: the loader blocks on its first read, as a slow disk would, so the routes are
        // asked while it loads however fast this machine loads the real pair.
        using var folder = new TempFolder();
        foreach (string file in Directory.GetFiles(Fixtures.DemoPair("policy")).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
            File.Copy(file, folder.File(Path.GetFileName(file)));
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", folder.File("model.safetensors"))) await mkfifo.WaitForExitAsync();
        await using var server = ServerProcess.Start("--policy", folder.Path, "--reference", folder.Path);
        await Polling.UntilHttpOk(server, "/healthz");
        using var client = new OpenAiHttp(server);
        foreach (var (route, body) in new[]
        {
            ("/v1/completions", """{"prompt":"Review of the phone:","max_tokens":1}"""),
            ("/v1/chat/completions", """{"messages":[{"role":"user","content":"Review of the phone:"}],"max_tokens":1}"""),
        })
        {
            var (status, text) = await client.Send(HttpMethod.Post, route, body);
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"{route}: {(int)status} {text}");
            var error = System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("unavailable", error.GetProperty("code").GetString());
            Assert.Contains("loading", error.GetProperty("message").GetString());
        }
    }

    /// <summary>A template in transformers' usual form, put in a copy of the demo policy's tokenizer_config.json.</summary>
    const string Template = "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}";

    [Fact]
    public async Task ChatCompletions_RenderTheTemplate_AndTheirLogprobsAreScoresOfTheRenderedPrompt()
    {
        using var policy = new TempFolder().WithFilesFrom(Fixtures.DemoPair("policy"));
        var config = JsonNode.Parse(File.ReadAllText(policy.File("tokenizer_config.json")))!.AsObject();
        config["chat_template"] = Template;
        File.WriteAllText(policy.File("tokenizer_config.json"), config.ToJsonString());
        await using var server = await StartReady(new Dictionary<string, string>(), "--policy", policy.Path, "--reference",
            Fixtures.DemoPair("reference"));
        using var client = new OpenAiHttp(server);
        string model = (await client.Get("/v1/models")).GetProperty("data")[0].GetProperty("id").GetString()!;
        var messages = new[] { new { role = "user", content = "Review of the phone:" } };
        var response = await client.Post("/v1/chat/completions", new
        {
            model, messages, temperature = 0, max_tokens = 6, logprobs = true, top_logprobs = 2, seed = 1,
        });
        Assert.Equal("chat.completion", response.GetProperty("object").GetString());
        var choice = response.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        var item = new ScoreItem { Messages = { new ChatMessage { Role = "user", Content = "Review of the phone:" } } };
        var sample = await server.Channel.Scorer.SampleAsync(new SampleRequest { Item = item, TopK = 1, MaxNewTokens = 6, Seed = 1 });
        Assert.Equal(sample.Samples[0].Text, choice.GetProperty("message").GetProperty("content").GetString());
        var ids = sample.Samples[0].Scores.TokenIds;
        var scored = (await server.Channel.Scorer.ScoreAsync(new ScoreRequest
        {
            Items = { new ScoreItem { Messages = { item.Messages }, ResponseTokenIds = { ids } } },
        })).Results[0];
        var content = choice.GetProperty("logprobs").GetProperty("content").EnumerateArray().ToList();
        OpenAiHttp.Close(scored.PolicyLogprobs, [.. content.Select(c => c.GetProperty("logprob").GetDouble())], "chat logprobs");
        Assert.All(content, c => Assert.Equal(2, c.GetProperty("top_logprobs").GetArrayLength()));
        Assert.All(content, c => Assert.Equal(System.Text.Encoding.UTF8.GetBytes(c.GetProperty("token").GetString()!),
            c.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32())));
        Assert.Equal(scored.Reward, choice.GetProperty("qservice").GetProperty("reward").GetDouble(), 1e-5);
        Assert.Equal(scored.PromptTokens, response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        // The remote tokenizer gives the template and the rendered prompt's ids.
        Assert.Equal(Template, (await client.Get("/tokenizer_info")).GetProperty("chat_template").GetString());
        var rendered = await client.Post("/tokenize", new { messages });
        Assert.Equal(scored.PromptTokens, rendered.GetProperty("count").GetInt32());
        var detokenized = await client.Post("/detokenize", new { tokens = OpenAiHttp.Ints(rendered.GetProperty("tokens")) });
        Assert.Equal("user: Review of the phone:\nassistant:", detokenized.GetProperty("prompt").GetString());
    }
}
