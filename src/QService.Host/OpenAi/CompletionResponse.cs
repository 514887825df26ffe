using System.Text.Json.Nodes;

namespace QService.Host.OpenAi;

/// <summary>The envelope of a completions or chat completions response: {id, object, created, model, choices, usage}.</summary>
public sealed record CompletionResponse(string Id, long Created, string Model, string Object)
{
    public JsonObject Json(IEnumerable<JsonObject> choices, JsonObject? usage) => new()
    {
        ["id"] = Id,
        ["object"] = Object,
        ["created"] = Created,
        ["model"] = Model,
        ["choices"] = new JsonArray([.. choices.Select(c => (JsonNode?)c)]),
        ["usage"] = usage,
    };
}
