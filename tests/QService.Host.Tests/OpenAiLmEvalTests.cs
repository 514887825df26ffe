using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// lm-evaluation-harness's local-completions loglikelihood over real sockets, on the HF reference pair (token ids only): the
/// request it sends, read as it reads it (choices by index, token_logprobs[ctxlen:-1], is_greedy from top_logprobs).
/// </summary>
[Collection(nameof(PairServerCollection))]
public class OpenAiLmEvalTests(PairServer fixture)
{
    [Fact]
    public async Task Loglikelihood_AsLmEvalSendsAndReadsIt_IsScoresLogprobs_WithIsGreedyAsNextTokensSays()
    {
        using var client = new OpenAiHttp(fixture.Server);
        var scorer = fixture.Server.Channel.Scorer;
        var pairs = fixture.Expected.GetProperty("pairs").EnumerateArray().Take(2)
            .Select(p => (Context: OpenAiHttp.Ints(p.GetProperty("prompt_ids")), Continuation: OpenAiHttp.Ints(p.GetProperty("response_ids")))).ToList();
        // A continuation that is greedy by construction: the policy's most likely token three times.
        int[] context = pairs[0].Context, greedy = [];
        for (int t = 0; t < 3; t++)
        {
            var next = await scorer.NextTokensAsync(new NextTokensRequest
            {
                Items = { new ScoreItem { PromptTokenIds = { context }, ResponseTokenIds = { greedy } } }, TopK = 1,
            });
            greedy = [.. greedy, next.Results[0].Candidates[0].Id];
        }
        pairs.Add((context, greedy));
        string model = (await client.Get("/v1/models")).GetProperty("data")[0].GetProperty("id").GetString()!;

        // lm_eval/models/openai_completions.py, _create_payload(generate=False).
        var response = await client.Post("/v1/completions", new Dictionary<string, object>
        {
            ["model"] = model, ["prompt"] = pairs.Select(p => p.Context.Concat(p.Continuation).ToArray()).ToArray(), ["temperature"] = 0,
            ["max_tokens"] = 1, ["logprobs"] = 1, ["seed"] = 1234, ["echo"] = true,
        });
        var choices = response.GetProperty("choices").EnumerateArray().OrderBy(c => c.GetProperty("index").GetInt32()).ToList();
        Assert.Equal(pairs.Count, choices.Count);
        var greedyFlags = new List<bool>();
        foreach (var ((ctx, cont), choice) in pairs.Zip(choices))
        {
            // parse_logprobs: token_logprobs[ctxlen:-1] and top_logprobs[ctxlen:-1].
            var logprobs = choice.GetProperty("logprobs");
            var tokenLogprobs = logprobs.GetProperty("token_logprobs").EnumerateArray().ToList();
            var topLogprobs = logprobs.GetProperty("top_logprobs").EnumerateArray().ToList();
            Assert.Equal(ctx.Length + cont.Length + 1, tokenLogprobs.Count);
            Assert.Equal(JsonValueKind.Null, tokenLogprobs[0].ValueKind);
            Assert.Equal(JsonValueKind.Null, topLogprobs[0].ValueKind);
            var continuation = tokenLogprobs[ctx.Length..^1].Select(e => e.GetDouble()).ToList();
            var scored = await client.Score(ctx, cont);
            OpenAiHttp.Close(scored.PolicyLogprobs, continuation, "continuation log-probabilities");
            bool isGreedy = continuation.Zip(topLogprobs[ctx.Length..^1])
                .All(pair => pair.First == pair.Second.EnumerateObject().Max(p => p.Value.GetDouble()));
            greedyFlags.Add(isGreedy);
            Assert.Equal(await IsGreedy(ctx, cont), isGreedy);

            // The pair's credits come with it: the prompt's after its first token equal Score's on the same split.
            var numbers = choice.GetProperty("qservice");
            var promptScores = await client.Score(ctx.Concat(cont).Take(1), ctx.Concat(cont).Skip(1));
            OpenAiHttp.Close(promptScores.Credits, OpenAiHttp.Doubles(numbers.GetProperty("prompt").GetProperty("credits")), "prompt credits");
            Assert.Equal(promptScores.Reward, numbers.GetProperty("prompt").GetProperty("reward").GetDouble(), 1e-5);
            // The one generated token (temperature 0) is the policy's most likely next token, with Score's numbers.
            int generated = Assert.Single(OpenAiHttp.Ints(numbers.GetProperty("token_ids")));
            var next = await scorer.NextTokensAsync(new NextTokensRequest
            {
                Items = { new ScoreItem { PromptTokenIds = { ctx.Concat(cont) } } }, TopK = 1,
            });
            Assert.Equal(next.Results[0].Candidates[0].Id, generated);
            var last = await client.Score(ctx.Concat(cont), [generated]);
            Assert.Equal(last.PolicyLogprobs[0], tokenLogprobs[^1].GetDouble(), 1e-5);
            Assert.Equal(last.Credits[0], OpenAiHttp.Doubles(numbers.GetProperty("credits"))[0], 1e-5);
            // No tokenizer on this server: tokens are vLLM's "token_id:N".
            Assert.Equal($"token_id:{generated}", logprobs.GetProperty("tokens")[ctx.Length + cont.Length].GetString());
        }
        Assert.Contains(true, greedyFlags);
        Assert.Contains(false, greedyFlags);
    }

    /// <summary>Whether every continuation token is the policy's most likely one after the tokens before it.</summary>
    async Task<bool> IsGreedy(int[] context, int[] continuation)
    {
        for (int t = 0; t < continuation.Length; t++)
        {
            var next = await fixture.Server.Channel.Scorer.NextTokensAsync(new NextTokensRequest
            {
                Items = { new ScoreItem { PromptTokenIds = { context }, ResponseTokenIds = { continuation[..t] } } }, TopK = 1,
            });
            if (next.Results[0].Candidates[0].Id != continuation[t]) return false;
        }
        return true;
    }
}
