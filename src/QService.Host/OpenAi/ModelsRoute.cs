using System.Text.Json.Nodes;
using QService.Engine;

namespace QService.Host.OpenAi;

/// <summary>GET /v1/models and /v1/models/{id}: each served policy by name, "reference", and "guided" (which takes alpha).</summary>
public sealed class ModelsRoute(ScoringEngine engine)
{
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public Task<JsonNode?> ListAsync(OpenAiCall call) => Task.FromResult<JsonNode?>(new JsonObject
    {
        ["object"] = "list",
        ["data"] = new JsonArray([.. ModelChoice.Ids(engine.Info).Select(id => (JsonNode?)Model(id))]),
    });

    public Task<JsonNode?> GetAsync(OpenAiCall call)
    {
        string id = call.Http.Request.RouteValues["id"]?.ToString() ?? "";
        return ModelChoice.Ids(engine.Info).Contains(id)
            ? Task.FromResult<JsonNode?>(Model(id))
            : throw new OpenAiException(404, $"the model '{id}' does not exist", "model", "model_not_found");
    }

    JsonObject Model(string id)
    {
        var info = engine.Info;
        var policy = info.Policies.FirstOrDefault(p => p.Name == id);
        var (role, source) = policy != null ? ("policy", policy.Model)
            : id == ModelChoice.Reference ? ("reference", info.ReferenceName)
            : ("guided", $"(1-alpha)*log pi_ref + alpha*log pi of {info.Policies[0].Name} and {info.ReferenceName}");
        return new JsonObject
        {
            ["id"] = id,
            ["object"] = "model",
            ["created"] = _created,
            ["owned_by"] = "qservice",
            ["max_model_len"] = info.MaxContext,
            ["qservice"] = new JsonObject { ["role"] = role, ["model"] = source },
        };
    }
}
