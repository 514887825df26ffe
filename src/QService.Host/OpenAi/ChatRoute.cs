using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Engine;
using QService.Engine.Sampling;

namespace QService.Host.OpenAi;

/// <summary>
/// POST /v1/chat/completions: the messages are the item's prompt (ScoreItemInput.Messages), which the engine renders with the
/// checkpoint's chat template (add_generation_prompt); n samples of the assistant's answer, with OpenAI's chat logprobs
/// (logprobs.content[{token, logprob, bytes, top_logprobs}]) under the requested model.
/// </summary>
public sealed class ChatRoute(ScoringEngine engine, RequestLimits limits)
{
    const int MaxTopLogprobs = 20;

    public async Task<JsonNode?> HandleAsync(OpenAiCall call)
    {
        var body = call.Body;
        var model = ModelChoice.Resolve(body, engine.Info);
        var messages = Messages(body);
        int maxTokens = JsonFields.Int(body, "max_completion_tokens", 1, int.MaxValue) ?? JsonFields.Int(body, "max_tokens", 1, int.MaxValue) ?? 0;
        var options = Generation.Options(body, model, maxTokens);
        bool logprobs = JsonFields.Bool(body, "logprobs", false);
        int? topN = JsonFields.Int(body, "top_logprobs", 0, MaxTopLogprobs);
        if (topN != null && !logprobs) throw OpenAiException.Invalid("top_logprobs needs logprobs: true", "top_logprobs");
        (call.Items, call.Policy) = (1, model.Policy);

        var item = new ScoreItemInput { Messages = messages, Policy = model.Policy };
        SampleResult result;
        try
        {
            result = await engine.SampleAsync(item, options, call.Cancellation, call.Caller);
        }
        catch (ScoringException e) when (e.Kind == ScoringErrorKind.InvalidArgument && e.Message.Contains("messages", StringComparison.Ordinal))
        {
            // No chat template, or one that refuses these messages: the field is the request's messages.
            throw new OpenAiException(400, e.Message, "messages");
        }
        var strings = new TokenStrings(engine.Tokenizer);
        var choices = new List<JsonObject>();
        foreach (var (sample, index) in result.Samples.Select((s, i) => (s, i)))
        {
            var choice = new JsonObject
            {
                ["index"] = index,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = Generation.CutAtStop(sample.Text, sample, options.Stop) },
                ["logprobs"] = logprobs ? await ContentLogprobs(item, result.PrefixTokens, sample, model, topN ?? 0, strings, call) : null,
                ["finish_reason"] = Generation.FinishReason(sample.Finish),
                ["qservice"] = ChoiceNumbers.For(model.Policy, result.Beta, sample.Scores, null),
            };
            choices.Add(choice);
        }
        int completion = result.Samples.Sum(s => s.Scores.TokenIds.Length);
        call.Tokens = result.PrefixTokens + completion;
        var usage = new JsonObject
        {
            ["prompt_tokens"] = result.PrefixTokens, ["completion_tokens"] = completion, ["total_tokens"] = result.PrefixTokens + completion,
        };
        var response = new CompletionResponse($"chatcmpl-{Guid.NewGuid():N}", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model.Id, "chat.completion");
        if (!JsonFields.Bool(body, "stream", false)) return response.Json(choices, usage);
        // A stream's chunks carry the answer as a delta.
        foreach (var c in choices)
        {
            var message = c["message"]!;
            c.Remove("message");
            c["delta"] = message.DeepClone();
        }
        await ServerSentEvents.SendAsync(call, response, choices, usage, "chat.completion.chunk");
        return null;
    }

    /// <summary>messages: [{role, content}], content a string or a list of text parts ({"type": "text", "text": ...}).</summary>
    public static List<ChatTurn> Messages(JsonElement body)
    {
        if (JsonFields.Get(body, "messages") is not { ValueKind: JsonValueKind.Array } list || list.GetArrayLength() == 0)
            throw OpenAiException.Invalid("messages must be a non-empty list of {role, content}", "messages");
        var turns = new List<ChatTurn>();
        foreach (var m in list.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object) throw OpenAiException.Invalid("each message must be an object {role, content}", "messages");
            string role = JsonFields.String(m, "role") ?? throw OpenAiException.Invalid("a message has no role", "messages");
            turns.Add(new ChatTurn(role, Content(m)));
        }
        return turns;
    }

    static string Content(JsonElement message) => JsonFields.Get(message, "content") switch
    {
        { ValueKind: JsonValueKind.String } s => s.GetString()!,
        { ValueKind: JsonValueKind.Array } parts when parts.EnumerateArray().All(p => p.ValueKind == JsonValueKind.Object
            && JsonFields.String(p, "type") == "text" && JsonFields.String(p, "text") != null) =>
            string.Concat(parts.EnumerateArray().Select(p => p.GetProperty("text").GetString())),
        _ => throw OpenAiException.Invalid("a message's content must be a string or a list of text parts; this server takes text only", "messages"),
    };

    async Task<JsonObject> ContentLogprobs(ScoreItemInput item, int promptTokens, SampledResponse sample, ModelChoice model, int topN,
        TokenStrings strings, OpenAiCall call)
    {
        int[] generated = sample.Scores.TokenIds;
        // The rendered prompt's ids are the context of the first tokens' text (a leading space, a byte piece).
        int[] all = [.. engine.ChatPromptTokenIds(item.Messages!), .. generated];
        var prefixes = Enumerable.Range(0, generated.Length)
            .Select(g => (item with { ResponseTokenIds = generated[..g] }, promptTokens + g)).ToList();
        var tops = await new TopLogprobs(engine, limits).ForAsync(prefixes, model, topN, call.Caller, call.Cancellation);
        var content = new JsonArray();
        for (int g = 0; g < generated.Length; g++)
        {
            double value = model.Logprob(sample.Scores.PolicyLogprobs[g], sample.Scores.ReferenceLogprobs[g], tops[g].GuidedLogNormaliser);
            int position = all.Length - generated.Length + g;
            var entry = LogprobEntry.Create(generated[g], value, tops[g], topN, includeToken: false, id => strings.At(all, position, id));
            content.Add(new JsonObject
            {
                ["token"] = entry.Token,
                ["logprob"] = entry.Logprob,
                ["bytes"] = Bytes(entry.Token),
                ["top_logprobs"] = new JsonArray([.. entry.Top.Select(t => (JsonNode?)new JsonObject
                {
                    ["token"] = t.Token, ["logprob"] = t.Logprob, ["bytes"] = Bytes(t.Token),
                })]),
            });
        }
        return new JsonObject { ["content"] = content, ["refusal"] = null };
    }

    static JsonArray Bytes(string token) => new([.. Encoding.UTF8.GetBytes(token).Select(b => (JsonNode?)(int)b)]);
}
