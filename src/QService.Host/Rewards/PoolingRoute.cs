using System.Text.Json.Nodes;
using QService.Engine;

namespace QService.Host.Rewards;

/// <summary>
/// POST /pooling in vLLM's shape: {model, input | messages} answered {data: [{index, object: "pooling", data: [[value], ...]}]},
/// one row per scored token, as vLLM's token reward models answer. An input (a string, strings, ids or lists of ids) is scored
/// whole after its first token (BOS when the tokenizer adds one), which is its context; messages score the last turn, the
/// assistant's, after the others rendered by the chat template. "value" picks the rows: "credit" (the default), "q", or
/// "logprobs" ([policy, reference] per token).
/// </summary>
public static class PoolingRoute
{
    public const string Route = "/pooling";
    const string Shape = "{\"model\": name, \"input\": text | [text] | [ids] | [[ids]]} or {\"model\": name, \"messages\": [{\"role\", \"content\"}]}";

    public static async Task<RouteAnswer> HandleAsync(RouteRequest request, ScoringEngine engine)
    {
        var body = RewardText.Object(request.Body, Shape);
        string value = RewardText.OptionalString(body, "value") ?? "credit";
        if (value is not ("credit" or "q" or "logprobs")) throw RouteException.Invalid($"value is '{value}'; use credit, q or logprobs");
        if (RewardText.OptionalString(body, "encoding_format") is { } format && format != "float")
            throw RouteException.Invalid($"encoding_format is '{format}'; this server answers float only");
        string policy = Policy(engine, RewardText.OptionalString(body, "model"));
        bool hasInput = body["input"] is not null, hasMessages = body["messages"] is not null;
        if (hasInput == hasMessages) throw RouteException.Invalid($"give either input or messages, not {(hasInput ? "both" : "neither")}: {Shape}");
        var items = hasInput ? Inputs(engine, body["input"]!) : [Conversation(body["messages"]!)];
        var scored = await engine.ScoreAsync([.. items.Select(i => i with { Policy = policy })], new ScoreOptions(), request.Cancellation, request.Caller);
        var data = scored.Select((s, i) => new { index = i, @object = "pooling", data = Rows(s, value) }).ToArray();
        int tokens = scored.Sum(s => s.PromptTokens + s.TokenIds.Length);
        var usage = new { prompt_tokens = tokens, total_tokens = tokens, completion_tokens = 0 };
        var json = new { id = $"pool-{Guid.NewGuid():N}", @object = "list", created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            model = policy.Length > 0 ? policy : engine.Info.PolicyName, data, usage };
        return new RouteAnswer(json, items.Count, tokens);
    }

    static float[][] Rows(ItemScores s, string value) => value switch
    {
        "q" => [.. s.QValues.Select(q => new[] { q })],
        "logprobs" => [.. s.PolicyLogprobs.Select((p, t) => new[] { p, s.ReferenceLogprobs[t] })],
        _ => [.. s.Credits.Select(c => new[] { c })],
    };

    /// <summary>The served policy the model names: a policy's name, or the default policy's model name (empty: the default).</summary>
    static string Policy(ScoringEngine engine, string? model)
    {
        var info = engine.Info;
        if (string.IsNullOrEmpty(model) || model == info.PolicyName) return "";
        if (info.Policies.Any(p => p.Name == model)) return model;
        throw RouteException.Invalid($"model '{model}' is not served; use one of {string.Join(", ", info.Policies.Select(p => p.Name))}");
    }

    static List<ScoreItemInput> Inputs(ScoringEngine engine, JsonNode input)
    {
        if (input is JsonValue) return [Whole(engine, RewardText.String(input, "input"), "input")];
        if (input is not JsonArray list || list.Count == 0) throw RouteException.Invalid($"input must be a string or a non-empty list: {Shape}");
        if (list.All(n => n is JsonValue v && v.TryGetValue(out int _))) return [Ids(list, "input")];
        return [.. list.Select((n, i) => n is JsonArray ids ? Ids(ids, $"input[{i}]") : Whole(engine, RewardText.String(n!, $"input[{i}]"), $"input[{i}]"))];
    }

    /// <summary>Text tokenised as vLLM tokenises a pooling input (special tokens added), split after its first token.</summary>
    static ScoreItemInput Whole(ScoringEngine engine, string text, string name) =>
        AfterFirst(RewardText.Tokenizer(engine).EncodeIds(text, addSpecialTokens: true), name);

    static ScoreItemInput Ids(JsonArray list, string name)
    {
        int[] ids = [.. list.Select((n, t) => n is JsonValue v && v.TryGetValue(out int id) ? id
            : throw RouteException.Invalid($"{name}[{t}] must be a token id (an integer)"))];
        return AfterFirst(ids, name);
    }

    static ScoreItemInput AfterFirst(int[] ids, string name) => ids.Length >= 2
        ? new ScoreItemInput { PromptTokenIds = ids[..1], ResponseTokenIds = ids[1..] }
        : throw RouteException.Invalid($"{name} has {ids.Length} token(s); the first is context, so it needs at least 2");

    /// <summary>The last turn must be the assistant's: it is scored after the rest, rendered with the chat template.</summary>
    static ScoreItemInput Conversation(JsonNode messages)
    {
        if (messages is not JsonArray turns || turns.Count < 2)
            throw RouteException.Invalid("messages must list at least a user turn and the assistant's answer");
        var parsed = turns.Select((t, i) => t is JsonObject o
            ? new ChatTurn(RewardText.OptionalString(o, "role") ?? "", RewardText.OptionalString(o, "content") ?? "")
            : throw RouteException.Invalid($"messages[{i}] must be an object {{\"role\", \"content\"}}")).ToList();
        if (parsed[^1].Role != "assistant")
            throw RouteException.Invalid($"messages[{turns.Count - 1}] is '{parsed[^1].Role}'; the last turn scored must be the assistant's");
        return new ScoreItemInput { Messages = parsed[..^1], Response = parsed[^1].Content };
    }
}
