using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>/v1/completions on the demo pair (text through its GPT-2-style tokenizer), read as OpenAI clients and lm-eval read it.</summary>
[Collection(nameof(DefaultServerCollection))]
public class OpenAiCompletionsTests(DefaultServer fixture)
{
    const string Prompt = "Review of the phone:";

    [Fact]
    public async Task GenerateUntil_AsLmEvalSendsIt_IsGreedySampleCutBeforeTheStopString()
    {
        using var client = new OpenAiHttp(fixture.Server);
        string[] prompts = [Prompt, "Review of the kettle:"];
        // lm_eval/models/openai_completions.py, _create_payload(generate=True).
        var response = await client.Post("/v1/completions", new Dictionary<string, object>
        {
            ["prompt"] = prompts, ["model"] = "policy", ["max_tokens"] = 32, ["temperature"] = 0, ["stop"] = new[] { "." }, ["seed"] = 1234,
        });
        // parse_generations: tmp[choice["index"]] = choice["text"].
        var texts = new string[prompts.Length];
        foreach (var choice in response.GetProperty("choices").EnumerateArray())
            texts[choice.GetProperty("index").GetInt32()] = choice.GetProperty("text").GetString()!;
        for (int i = 0; i < prompts.Length; i++)
        {
            var sample = await fixture.Server.Channel.Scorer.SampleAsync(new SampleRequest
            {
                Item = new ScoreItem { Prompt = prompts[i] }, TopK = 1, MaxNewTokens = 32, Stop = { "." }, Seed = 5,
            });
            string expected = sample.Samples[0].Text;
            Assert.Contains(".", expected);
            Assert.Equal(expected[..expected.IndexOf('.')], texts[i]);
            var choice = response.GetProperty("choices")[i];
            Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
            // The pair's numbers for the generated tokens are Score's.
            var numbers = choice.GetProperty("qservice");
            var scored = await client.Score(await Tokenize(client, prompts[i]), OpenAiHttp.Ints(numbers.GetProperty("token_ids")));
            OpenAiHttp.Close(scored.Credits, OpenAiHttp.Doubles(numbers.GetProperty("credits")), "credits");
            Assert.Equal(scored.Reward, numbers.GetProperty("reward").GetDouble(), 1e-5);
        }
    }

    static async Task<int[]> Tokenize(OpenAiHttp client, string text, bool special = true) =>
        OpenAiHttp.Ints((await client.Post("/tokenize", new { prompt = text, add_special_tokens = special })).GetProperty("tokens"));

    [Fact]
    public async Task ACompletion_HasOpenAisShape_AndEveryNumberIsScores()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var body = new Dictionary<string, object>
        {
            ["model"] = "policy", ["prompt"] = Prompt, ["max_tokens"] = 6, ["n"] = 2, ["temperature"] = 0.9, ["top_p"] = 0.95, ["top_k"] = 50,
            ["seed"] = 7, ["logprobs"] = 3,
        };
        var response = await client.Post("/v1/completions", body);
        Assert.StartsWith("cmpl-", response.GetProperty("id").GetString());
        Assert.Equal("text_completion", response.GetProperty("object").GetString());
        Assert.True(response.GetProperty("created").GetInt64() > 1_700_000_000);
        Assert.Equal("policy", response.GetProperty("model").GetString());
        int[] prompt = await Tokenize(client, Prompt);
        var choices = response.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1], choices.Select(c => c.GetProperty("index").GetInt32()));
        int completionTokens = 0;
        foreach (var choice in choices)
        {
            var numbers = choice.GetProperty("qservice");
            int[] ids = OpenAiHttp.Ints(numbers.GetProperty("token_ids"));
            completionTokens += ids.Length;
            var logprobs = choice.GetProperty("logprobs");
            var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
            Assert.Equal(ids.Length, tokens.Count);
            Assert.Equal(choice.GetProperty("text").GetString(), string.Concat(tokens).Replace("<|endoftext|>", ""));
            var scored = await client.Score(prompt, ids);
            OpenAiHttp.Close(scored.PolicyLogprobs, OpenAiHttp.Doubles(logprobs.GetProperty("token_logprobs")), "token_logprobs");
            OpenAiHttp.Close(scored.ReferenceLogprobs, OpenAiHttp.Doubles(numbers.GetProperty("reference_logprobs")), "reference_logprobs");
            OpenAiHttp.Close(scored.Credits, OpenAiHttp.Doubles(numbers.GetProperty("credits")), "credits");
            OpenAiHttp.Close(scored.QValues, OpenAiHttp.Doubles(numbers.GetProperty("q_values")), "q_values");
            Assert.Equal(scored.Reward, numbers.GetProperty("reward").GetDouble(), 1e-5);
            // top_logprobs: the 3 most likely tokens by NextTokens (= Score of prefix + candidate), and the token itself.
            var top = logprobs.GetProperty("top_logprobs").EnumerateArray().ToList();
            for (int g = 0; g < ids.Length; g++)
            {
                var next = await fixture.Server.Channel.Scorer.NextTokensAsync(new NextTokensRequest
                {
                    Items = { new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { ids[..g] } } }, TopK = 3,
                });
                var entries = top[g].EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
                Assert.InRange(entries.Count, 3, 4);
                Assert.Equal(logprobs.GetProperty("token_logprobs")[g].GetDouble(), entries[tokens[g]]);
                Assert.Equal(next.Results[0].Candidates[0].PolicyLogprob, entries.Values.Max(), 1e-5);
            }
            var offsets = OpenAiHttp.Ints(logprobs.GetProperty("text_offset"));
            Assert.Equal(0, offsets[0]);
            Assert.Equal(tokens.Select((t, i) => tokens.Take(i).Sum(x => x.Length)), offsets);
        }
        var usage = response.GetProperty("usage");
        Assert.Equal(prompt.Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(completionTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(prompt.Length + completionTokens, usage.GetProperty("total_tokens").GetInt32());
        // The same seed gives the same choices.
        var again = await client.Post("/v1/completions", body);
        Assert.Equal(Texts(response), Texts(again));
    }

    static string[] Texts(JsonElement response) => [.. response.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!)];

    [Fact]
    public async Task EchoWithMaxTokensZero_ScoresThePromptOnly_FirstTokenNull()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var response = await client.Post("/v1/completions", new { prompt = Prompt, echo = true, max_tokens = 0, logprobs = 0 });
        var choice = response.GetProperty("choices")[0];
        Assert.Equal(Prompt, choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        int[] prompt = await Tokenize(client, Prompt);
        var logprobs = choice.GetProperty("logprobs");
        Assert.Equal(prompt.Length, logprobs.GetProperty("tokens").GetArrayLength());
        var values = logprobs.GetProperty("token_logprobs").EnumerateArray().ToList();
        Assert.Equal(JsonValueKind.Null, values[0].ValueKind);
        Assert.Equal(JsonValueKind.Null, logprobs.GetProperty("top_logprobs")[0].ValueKind);
        var scored = await client.Score(prompt[..1], prompt[1..]);
        OpenAiHttp.Close(scored.PolicyLogprobs, [.. values.Skip(1).Select(v => v.GetDouble())], "prompt logprobs");
        // logprobs 0: each top_logprobs holds only the token itself.
        Assert.All(logprobs.GetProperty("top_logprobs").EnumerateArray().Skip(1), t => Assert.Single(t.EnumerateObject()));
        Assert.Equal(0, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Empty(choice.GetProperty("qservice").GetProperty("token_ids").EnumerateArray());
    }

    [Fact]
    public async Task TheReferenceAndTheGuidedMix_ReturnTheirOwnLogprobs()
    {
        using var client = new OpenAiHttp(fixture.Server);
        object Body(string model, double? alpha) => alpha is double a
            ? new { model, alpha = a, prompt = Prompt, max_tokens = 5, seed = 3, logprobs = 1 }
            : new { model, alpha = (double?)null, prompt = Prompt, max_tokens = 5, seed = 3, logprobs = 1 };
        foreach (var (model, alpha, logprobsOf) in new[] { ("reference", (double?)null, "reference_logprobs"), ("guided", 0.0, "reference_logprobs"),
            ("guided", 1.0, "policy_logprobs") })
        {
            var choice = (await client.Post("/v1/completions", Body(model, alpha))).GetProperty("choices")[0];
            var numbers = choice.GetProperty("qservice");
            OpenAiHttp.Close([.. OpenAiHttp.Doubles(numbers.GetProperty(logprobsOf)).Select(v => (float)v)],
                OpenAiHttp.Doubles(choice.GetProperty("logprobs").GetProperty("token_logprobs")), $"{model} {alpha}");
        }
        // Guided at alpha 1 draws what the policy draws with the same seed; alpha 2 is a distribution of its own (log-probabilities <= 0).
        var policy = await client.Post("/v1/completions", new { prompt = Prompt, max_tokens = 5, seed = 3 });
        var guided = await client.Post("/v1/completions", Body("guided", 1.0));
        Assert.Equal(Texts(policy), Texts(guided));
        var strong = (await client.Post("/v1/completions", Body("guided", 2.0))).GetProperty("choices")[0].GetProperty("logprobs");
        Assert.All(OpenAiHttp.Doubles(strong.GetProperty("token_logprobs")), v => Assert.InRange(v, double.NegativeInfinity, 1e-9));
    }

    [Fact]
    public async Task Streaming_SendsEachFinishedChoiceAsAnEvent_ThenUsage_ThenDone()
    {
        using var client = new OpenAiHttp(fixture.Server);
        string json = JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = 8, n = 2, seed = 11, stream = true,
            stream_options = new { include_usage = true } });
        var (status, text) = await client.Send(HttpMethod.Post, "/v1/completions", json);
        Assert.Equal(System.Net.HttpStatusCode.OK, status);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.TrimStart()).ToList();
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.Equal(3, chunks.Count);
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        var streamed = chunks[..2].Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()).ToArray();
        var whole = await client.Post("/v1/completions", new { prompt = Prompt, max_tokens = 8, n = 2, seed = 11 });
        Assert.Equal(Texts(whole), streamed);
        Assert.Equal(whole.GetProperty("usage").GetProperty("total_tokens").GetInt32(),
            chunks[2].GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }
}
