using System.Text.Json.Nodes;
using QService.Engine;

namespace QService.Host.OpenAi;

/// <summary>The per-choice <c>qservice</c> object: the pair's numbers for the tokens of the choice, as Score gives them.</summary>
public static class ChoiceNumbers
{
    /// <summary>
    /// The completion's tokens scored after the prompt (Score(prompt, completion)), and with echo the prompt's tokens after its
    /// first (Score(prompt[0], prompt[1:])) under <c>prompt</c>.
    /// </summary>
    public static JsonObject For(string policy, double beta, ItemScores? completion, ItemScores? prompt)
    {
        var o = new JsonObject { ["policy"] = policy, ["beta"] = beta };
        Add(o, completion);
        if (prompt != null) o["prompt"] = Add(new JsonObject(), prompt);
        return o;
    }

    static JsonObject Add(JsonObject o, ItemScores? s)
    {
        o["token_ids"] = new JsonArray([.. (s?.TokenIds ?? []).Select(i => (JsonNode?)i)]);
        o["policy_logprobs"] = Array(s?.PolicyLogprobs.Select(v => (double)v));
        o["reference_logprobs"] = Array(s?.ReferenceLogprobs.Select(v => (double)v));
        o["credits"] = Array(s?.Credits.Select(v => (double)v));
        o["q_values"] = Array(s?.QValues.Select(v => (double)v));
        o["reward"] = s?.Reward ?? 0;
        return o;
    }

    static JsonArray Array(IEnumerable<double>? values) => [.. (values ?? []).Select(v => (JsonNode?)JsonValue.Create(v))];
}
