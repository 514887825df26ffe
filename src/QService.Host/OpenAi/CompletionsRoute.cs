using System.Text.Json.Nodes;
using QService.Engine;
using QService.Engine.Sampling;

namespace QService.Host.OpenAi;

/// <summary>
/// POST /v1/completions. Each prompt is sampled n times by the engine (max_tokens > 0), its prompt scored with echo, and with
/// logprobs each returned token's top alternatives read through NextTokens; choice i·n + j is prompt i's j-th sample.
/// </summary>
public sealed class CompletionsRoute(ScoringEngine engine, RequestLimits limits)
{
    /// <summary>OpenAI's default max_tokens for completions.</summary>
    const int DefaultMaxTokens = 16;
    const int MaxTopLogprobs = 20;

    public async Task<JsonNode?> HandleAsync(OpenAiCall call)
    {
        var body = call.Body;
        var info = engine.Info;
        var model = ModelChoice.Resolve(body, info);
        var strings = new TokenStrings(engine.Tokenizer);
        var prompts = CompletionPrompts.Read(body, engine.Tokenizer, strings);
        int maxTokens = JsonFields.Int(body, "max_tokens", 0, int.MaxValue) ?? DefaultMaxTokens;
        var options = Generation.Options(body, model, maxTokens);
        // The engine bounds n when it samples; with max_tokens 0 nothing is sampled, and each prompt is one item of the limits.
        if (options.N > limits.MaxSamplesPerRequest)
            throw OpenAiException.Invalid($"n is {options.N}, more than the limit of {limits.MaxSamplesPerRequest} samples per request", "n");
        if (prompts.Count > limits.MaxItemsPerRequest)
            throw ScoringException.Exhausted($"the request has {prompts.Count} prompts, more than the limit of {limits.MaxItemsPerRequest}; split it");
        var request = new Request(model, JsonFields.Bool(body, "echo", false), JsonFields.Int(body, "logprobs", 0, MaxTopLogprobs), options, strings,
            new TopLogprobs(engine, limits));
        (call.Items, call.Policy) = (prompts.Count, model.Policy);

        var done = await Task.WhenAll(prompts.Select(p => CompleteAsync(p, request, call)));
        call.Tokens = done.Sum(d => d.Tokens);
        var choices = done.SelectMany(d => d.Choices).Select((c, i) => { c["index"] = i; return c; }).ToList();
        int promptTokens = prompts.Sum(p => p.Ids.Length), completionTokens = done.Sum(d => d.CompletionTokens);
        var usage = new JsonObject
        {
            ["prompt_tokens"] = promptTokens, ["completion_tokens"] = completionTokens, ["total_tokens"] = promptTokens + completionTokens,
        };
        var response = new CompletionResponse($"cmpl-{Guid.NewGuid():N}", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model.Id, "text_completion");
        if (JsonFields.Bool(body, "stream", false))
        {
            await ServerSentEvents.SendAsync(call, response, choices, usage);
            return null;
        }
        return response.Json(choices, usage);
    }

    sealed record Request(ModelChoice Model, bool Echo, int? Logprobs, SampleOptions Options, TokenStrings Strings, TopLogprobs Top);

    sealed record Completed(List<JsonObject> Choices, int Tokens, int CompletionTokens);

    async Task<Completed> CompleteAsync(CompletionPrompt prompt, Request r, OpenAiCall call)
    {
        int[] ids = prompt.Ids;
        string policy = r.Model.Policy;
        async Task<SampleResult?> Sampled() => r.Options.MaxNewTokens > 0
            ? await engine.SampleAsync(new ScoreItemInput { PromptTokenIds = ids, Policy = policy }, r.Options, call.Cancellation, call.Caller)
            : null;
        var sampling = Sampled();
        var echo = r.Echo && ids.Length > 1
            ? engine.ScoreAsync([new ScoreItemInput { PromptTokenIds = ids[..1], ResponseTokenIds = ids[1..], Policy = policy }],
                new ScoreOptions(), call.Cancellation, call.Caller)
            : Task.FromResult<IReadOnlyList<ItemScores>>([]);
        await Task.WhenAll(sampling, echo);
        var promptScores = echo.Result.FirstOrDefault();
        IReadOnlyList<SampledResponse?> samples = sampling.Result is { } sampled
            ? [.. sampled.Samples]
            : [.. Enumerable.Repeat<SampledResponse?>(null, r.Options.N)];
        var top = r.Top;
        PositionTop[] promptTop = r.Logprobs is int n && r.Echo
            ? await top.ForAsync([.. Enumerable.Range(1, ids.Length - 1).Select(t => Prefix(ids[..t], [], policy))], r.Model, n, call.Caller, call.Cancellation)
            : [];
        var choices = new List<JsonObject>();
        foreach (var sample in samples)
            choices.Add(await ChoiceAsync(prompt, promptScores, promptTop, sample, r, top, call));
        int generated = samples.Sum(s => s?.Scores.TokenIds.Length ?? 0);
        return new Completed(choices, ids.Length + generated, generated);
    }

    static (ScoreItemInput, int) Prefix(int[] prompt, int[] response, string policy) =>
        (new ScoreItemInput { PromptTokenIds = prompt, ResponseTokenIds = response, Policy = policy }, prompt.Length + response.Length);

    async Task<JsonObject> ChoiceAsync(CompletionPrompt prompt, ItemScores? promptScores, PositionTop[] promptTop, SampledResponse? sample,
        Request r, TopLogprobs top, OpenAiCall call)
    {
        int[] ids = prompt.Ids, generated = sample?.Scores.TokenIds ?? [];
        string text = (r.Echo ? prompt.Text : "") + (sample is null ? "" : Generation.CutAtStop(sample.Text, sample, r.Options.Stop));
        var choice = new JsonObject
        {
            ["index"] = 0,
            ["text"] = text,
            ["logprobs"] = null,
            ["finish_reason"] = sample is null ? "length" : Generation.FinishReason(sample.Finish),
        };
        if (r.Logprobs is int n)
        {
            var genTop = await top.ForAsync([.. Enumerable.Range(0, generated.Length).Select(g => Prefix(ids, generated[..g], r.Model.Policy))],
                r.Model, n, call.Caller, call.Cancellation);
            choice["logprobs"] = Logprobs(ids, promptScores, promptTop, generated, sample?.Scores, genTop, r, n);
        }
        choice["qservice"] = ChoiceNumbers.For(r.Model.Policy, engine.Info.DefaultBeta, sample?.Scores, r.Echo ? promptScores : null);
        return choice;
    }

    /// <summary>OpenAI's completions logprobs; with echo the prompt's first token has null log-probability and top_logprobs.</summary>
    static JsonObject Logprobs(int[] ids, ItemScores? promptScores, PositionTop[] promptTop, int[] generated, ItemScores? genScores,
        PositionTop[] genTop, Request r, int n)
    {
        int[] all = [.. ids, .. generated];
        var entries = new List<LogprobEntry?>();
        LogprobEntry Entry(int position, float policy, float reference, PositionTop top) =>
            LogprobEntry.Create(all[position], r.Model.Logprob(policy, reference, top.GuidedLogNormaliser), top, n, includeToken: true,
                id => r.Strings.At(all, position, id));
        if (r.Echo)
        {
            entries.Add(null);
            for (int t = 1; t < ids.Length; t++)
                entries.Add(Entry(t, promptScores!.PolicyLogprobs[t - 1], promptScores.ReferenceLogprobs[t - 1], promptTop[t - 1]));
        }
        for (int g = 0; g < generated.Length; g++)
            entries.Add(Entry(ids.Length + g, genScores!.PolicyLogprobs[g], genScores.ReferenceLogprobs[g], genTop[g]));

        string[] tokens = [.. (r.Echo ? [r.Strings.At(all, 0, all[0])] : Array.Empty<string>()).Concat(entries.OfType<LogprobEntry>().Select(e => e.Token))];
        var offsets = new JsonArray();
        int offset = 0;
        foreach (var token in tokens)
        {
            offsets.Add(offset);
            offset += token.EnumerateRunes().Count();
        }
        return new JsonObject
        {
            ["tokens"] = new JsonArray([.. tokens.Select(t => (JsonNode?)t)]),
            ["token_logprobs"] = new JsonArray([.. entries.Select(e => e is null ? null : (JsonNode?)e.Logprob)]),
            ["top_logprobs"] = new JsonArray([.. entries.Select(e => e is null ? null : (JsonNode?)TopObject(e))]),
            ["text_offset"] = offsets,
        };
    }

    static JsonObject TopObject(LogprobEntry e)
    {
        var o = new JsonObject();
        foreach (var (token, logprob) in e.Top) o[token] = logprob;
        return o;
    }
}
