using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using QService.Protos.V1;
using QService.Runtime.Tokenization;

namespace QService.Host.Tests;

/// <summary>
/// The trainers' reward routes over real sockets, sent what OpenRLHF, slime and vLLM clients send: every number equals gRPC
/// Score's on the same tokens (1e-5), and README's reward examples run as written.
/// </summary>
[Collection(nameof(DefaultServerCollection))]
public class RewardRouteTests(DefaultServer fixture)
{
    const string Prompt = "Review of the phone:";
    const string Response = " The battery is long. The screen is awful.<|endoftext|>";
    static readonly HfTokenizer Tokenizer = HfTokenizer.Load(Path.Combine(Fixtures.RepoRoot, "models", "demo", "policy"));

    async Task<(HttpStatusCode Code, JsonElement Body)> Post(string route, string body)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{fixture.Server.ApiPort}") };
        var response = await http.PostAsync(route, new StringContent(body, Encoding.UTF8, "application/json"));
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
    }

    /// <summary>gRPC Score of the ids the routes score: prompt and response each tokenised without added special tokens.</summary>
    async Task<ScoredItem> ScoreIds(int[] prompt, int[] response, string? delimiter = null)
    {
        var item = new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { response } };
        var request = new ScoreRequest { Items = { item } };
        if (delimiter != null) request.StepDelimiter = delimiter;
        return (await fixture.Server.Channel.Scorer.ScoreAsync(request)).Results[0];
    }

    static string Json(object value) => JsonSerializer.Serialize(value);

    [Fact]
    public async Task GetReward_IsScoresReward_OnTheQuerysTokens_WithSpecialTokensAsTheirIds()
    {
        var request = new { query = new[] { Prompt + Response }, prompts = new[] { Prompt }, labels = new string?[] { null } };
        var (code, body) = await Post("/get_reward", Json(request));
        Assert.Equal(HttpStatusCode.OK, code);
        int[] prompt = Tokenizer.EncodeIds(Prompt, false), response = Tokenizer.EncodeIds(Response, false);
        Assert.Equal(Tokenizer.EosTokenId, response[^1]); // "<|endoftext|>" in the text is the EOS token, not its characters
        var scored = await ScoreIds(prompt, response, "\n");
        Assert.Equal(scored.Reward, body.GetProperty("rewards")[0].GetDouble(), 1e-5);
        Assert.Equal(scored.Reward, body.GetProperty("scores")[0].GetDouble(), 1e-5);
        var logs = body.GetProperty("extra_logs");
        Assert.Equal(response.Length, logs.GetProperty("qservice_tokens_scored")[0].GetDouble());
        Assert.Equal(prompt.Length, logs.GetProperty("qservice_prompt_tokens")[0].GetDouble());
        Assert.Equal(scored.QValues.Min(), logs.GetProperty("qservice_min_q")[0].GetDouble(), 1e-5);
        Assert.Equal(scored.StepEnds.Count, logs.GetProperty("qservice_steps")[0].GetDouble());
    }

    [Fact]
    public async Task GetReward_SplitsAQueryThatDoesNotStartWithItsPrompt_AfterTheirCommonTokens()
    {
        // The prompt's last characters are not in the query: the query is tokenised whole and split after the shared tokens.
        const string prompt = "Review of the phone:x";
        var (code, body) = await Post("/get_reward", Json(new { query = new[] { Prompt + Response }, prompts = new[] { prompt } }));
        Assert.Equal(HttpStatusCode.OK, code);
        int[] all = Tokenizer.EncodeIds(Prompt + Response, false), promptIds = Tokenizer.EncodeIds(prompt, false);
        int common = all.Zip(promptIds).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(common > 0 && common < promptIds.Length);
        var scored = await ScoreIds(all[..common], all[common..], "\n");
        Assert.Equal(scored.Reward, body.GetProperty("rewards")[0].GetDouble(), 1e-5);
        Assert.Equal(all.Length - common, body.GetProperty("extra_logs").GetProperty("qservice_tokens_scored")[0].GetDouble());
        Assert.Equal(scored.StepEnds.Count, body.GetProperty("extra_logs").GetProperty("qservice_steps")[0].GetDouble());
    }

    [Fact]
    public async Task GetReward_StepModes_AreTheMeanAndLowestOfScoresStepRewards()
    {
        var steps = await ScoreIds(Tokenizer.EncodeIds(Prompt, false), Tokenizer.EncodeIds(Response, false), ".");
        Assert.True(steps.StepRewards.Count >= 2, "the response has several steps");
        foreach (var (mode, expected) in new[] { ("step_mean", steps.StepRewards.Average()), ("step_min", steps.StepRewards.Min()) })
        {
            var (code, body) = await Post("/get_reward", Json(new { query = new[] { Prompt + Response }, prompts = new[] { Prompt }, reward_mode = mode,
                step_delimiter = "." }));
            Assert.Equal(HttpStatusCode.OK, code);
            Assert.Equal(expected, body.GetProperty("rewards")[0].GetDouble(), 1e-5);
            Assert.Equal(steps.StepRewards.Count, body.GetProperty("extra_logs").GetProperty("qservice_steps")[0].GetDouble());
        }
    }

    [Fact]
    public async Task GetReward_AnswersEmptyListsWithEmptyLists_AndBadRequestsWithClearErrors()
    {
        var (code, body) = await Post("/get_reward", """{"query": [], "prompts": [], "labels": []}""");
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal(0, body.GetProperty("rewards").GetArrayLength());
        Assert.Equal(0, body.GetProperty("scores").GetArrayLength());
        var cases = new[]
        {
            ("""{"query": ["a b"], "prompts": []}""", "one prompt per query"),
            ("""{"query": ["<|endoftext|>Review of the phone: Good."], "prompts": ["Review of the phone:"]}""", "query[0]"),
            ("""{"query": ["Review of the phone:"], "prompts": ["Review of the phone:"]}""", "no response"),
            ("""{"query": ["x y"], "prompts": ["x"], "reward_mode": "best"}""", "reward_mode"),
            ("[1, 2]", "JSON object"),
            ("{not json", "not valid JSON"),
        };
        foreach (var (request, message) in cases)
        {
            var (status, error) = await Post("/get_reward", request);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal("INVALID_ARGUMENT", error.GetProperty("code").GetString());
            Assert.Contains(message, error.GetProperty("message").GetString());
        }
        // Over the body limit (64 bytes per token of Limits:MaxTokensPerRequest, plus 1 MiB): refused as RESOURCE_EXHAUSTED.
        var (tooLarge, limit) = await Post("/get_reward", Json(new { query = new[] { new string('a', 10_000_000) }, prompts = new[] { "a" } }));
        Assert.Equal(HttpStatusCode.TooManyRequests, tooLarge);
        Assert.Contains("larger than the limit", limit.GetProperty("message").GetString());
    }

    [Fact]
    public async Task SlimesReward_IsABareNumber_ScoresReward()
    {
        var (code, body) = await Post("/reward", Json(new { prompt = Prompt, response = Response, label = "" }));
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal(JsonValueKind.Number, body.ValueKind);
        var scored = await ScoreIds(Tokenizer.EncodeIds(Prompt, false), Tokenizer.EncodeIds(Response, false));
        Assert.Equal(scored.Reward, body.GetDouble(), 1e-5);
    }

    [Fact]
    public async Task Pooling_GivesScoresCreditsQAndLogprobs_OneRowPerToken()
    {
        int[] ids = Tokenizer.EncodeIds(Prompt + Response, true);
        var scored = await ScoreIds(ids[..1], ids[1..]);
        foreach (var input in new object[] { Prompt + Response, ids, new[] { ids } })
        {
            var (code, body) = await Post("/pooling", Json(new { model = "policy", input }));
            Assert.Equal(HttpStatusCode.OK, code);
            var rows = body.GetProperty("data")[0];
            Assert.Equal("pooling", rows.GetProperty("object").GetString());
            Assert.Equal(scored.Credits, [.. rows.GetProperty("data").EnumerateArray().Select(r => r[0].GetSingle())], new Near());
        }
        var (_, q) = await Post("/pooling", Json(new { input = ids, value = "q" }));
        Assert.Equal(scored.QValues, [.. q.GetProperty("data")[0].GetProperty("data").EnumerateArray().Select(r => r[0].GetSingle())], new Near());
        var (_, logprobs) = await Post("/pooling", Json(new { input = ids, value = "logprobs" }));
        var pairs = logprobs.GetProperty("data")[0].GetProperty("data").EnumerateArray().ToArray();
        Assert.Equal(scored.PolicyLogprobs, [.. pairs.Select(r => r[0].GetSingle())], new Near());
        Assert.Equal(scored.ReferenceLogprobs, [.. pairs.Select(r => r[1].GetSingle())], new Near());
        Assert.Equal(ids.Length, logprobs.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // Messages go through the chat template, which the demo pair has not: the engine's INVALID_ARGUMENT, as 400.
        var (refused, error) = await Post("/pooling", """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Good."}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Contains("chat template", error.GetProperty("message").GetString());
        var (unknown, named) = await Post("/pooling", """{"model": "gpt-9", "input": "a b c"}""");
        Assert.Equal(HttpStatusCode.BadRequest, unknown);
        Assert.Contains("gpt-9", named.GetProperty("message").GetString());
    }

    [Fact]
    public async Task RewardRoutes_AreCountedUnderTheirRoute_AndLoggedOneLineEach()
    {
        await Post("/reward", Json(new { prompt = Prompt, response = " Good." }));
        string metrics = await fixture.Server.Http.GetStringAsync("/metrics");
        Assert.Contains("rpc=\"/reward\"", metrics);
        Assert.Contains("/reward OK items=1", fixture.Server.Output);
    }

    /// <summary>README's reward-examples block, each line run with bash as written (the port swapped for the test server's).</summary>
    [Fact]
    public async Task ReadmesRewardExamples_Work_AsWritten()
    {
        var lines = File.ReadAllLines(Path.Combine(Fixtures.RepoRoot, "README.md"));
        int start = Array.FindIndex(lines, l => l.StartsWith("<!-- reward-examples"));
        Assert.True(start >= 0, "README has no reward-examples block");
        var examples = lines.Skip(start + 2).TakeWhile(l => l != "```").Where(l => l.StartsWith("curl ")).ToList();
        Assert.Equal(3, examples.Count);
        foreach (var example in examples)
        {
            var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(example.Replace("127.0.0.1:50052", $"127.0.0.1:{fixture.Server.ApiPort}"));
            using var process = Process.Start(psi)!;
            var json = JsonDocument.Parse(await process.StandardOutput.ReadToEndAsync()).RootElement;
            await process.WaitForExitAsync();
            bool ok = example.Contains("/get_reward") ? json.TryGetProperty("rewards", out _) && json.TryGetProperty("extra_logs", out _)
                : example.Contains("/pooling") ? json.TryGetProperty("data", out _)
                : json.ValueKind == JsonValueKind.Number;
            Assert.True(ok, $"{example}: {json}");
        }
    }

    sealed class Near : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= 1e-5;
        public int GetHashCode(float value) => 0;
    }
}

/// <summary>The reward routes behind the API keys, as the gRPC calls are, and their settings checked at start-up.</summary>
public class RewardRouteAccessTests
{
    [Fact]
    public async Task BadRewardSettings_StopTheServerAtStartUp_WithTheReasons()
    {
        await using var server = ServerProcess.Start("--Rewards:Mode=best", "--Rewards:StepDelimiter=");
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("Rewards:Mode is 'best'; use sequence, step_mean or step_min", server.Output);
        Assert.Contains("Rewards:StepDelimiter must be 1 to 64 characters", server.Output);
    }

    [Fact]
    public async Task WithApiKeys_TheRewardRoutesNeedAKey()
    {
        const string key = "r3ward-0123456789abcdef-key";
        string file = Path.Combine(Path.GetTempPath(), $"qservice-reward-keys-{Guid.NewGuid():N}");
        File.WriteAllLines(file, [$"trainer:{key}"]);
        await using var server = await ServerProcess.StartServingAsync("--Server:ApiKeysFile=" + file);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.ApiPort}") };
        var body = """{"prompt": "Review of the phone:", "response": " Good."}""";
        var refused = await http.PostAsync("/reward", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("UNAUTHENTICATED", await refused.Content.ReadAsStringAsync());
        var request = new HttpRequestMessage(HttpMethod.Post, "/reward") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(request)).StatusCode);
        Assert.DoesNotContain(key, server.Output);
    }
}
