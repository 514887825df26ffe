using System.Text.Json.Nodes;
using QService.Engine;
using QService.Runtime.Tokenization;

namespace QService.Host.Rewards;

/// <summary>A text split into prompt and response ids, with the response's text and each response token's code-point end in it.</summary>
public sealed record SplitText(int[] Prompt, int[] Response, string ResponseText, int[] TokenEnds);

/// <summary>Turns the trainers' text into the token ids the engine scores, and reads their JSON fields.</summary>
public static class RewardText
{
    /// <summary>
    /// Prompt and response ids of a full text, each tokenised without added special tokens, as OpenRLHF tokenises prompts and
    /// serve_rm.py whole queries; special-token strings in the text (an EOS, chat markers) become the tokens they name. When the
    /// text starts with the prompt it is split there; otherwise the text is tokenised whole and split after its longest common token
    /// prefix with the prompt (TRL's rule for renders that do not start with the prompt). With the response's text and each
    /// token's code-point end in it, for steps.
    /// </summary>
    public static SplitText Split(HfTokenizer tokenizer, string text, string? prompt, string name)
    {
        if (string.IsNullOrEmpty(prompt))
            throw RouteException.Invalid($"{name}: the prompt is missing or empty; it says where the response starts");
        if (text.StartsWith(prompt, StringComparison.Ordinal))
        {
            // Offsets come with the ids in one pass: steps then cost one scan, not a decode per token.
            var response = tokenizer.Encode(text[prompt.Length..], addSpecialTokens: false);
            return Checked(new SplitText(tokenizer.EncodeIds(prompt, addSpecialTokens: false), response.Ids, text[prompt.Length..],
                [.. response.Offsets.Select(o => o.End)]), name);
        }
        int[] all = tokenizer.EncodeIds(text, addSpecialTokens: false), promptIds = tokenizer.EncodeIds(prompt, addSpecialTokens: false);
        int common = 0;
        while (common < all.Length && common < promptIds.Length && all[common] == promptIds[common]) common++;
        if (common == 0) throw RouteException.Invalid($"{name}: the text neither starts with its prompt nor shares a first token with it");
        int[] ids = all[common..];
        // As the engine splits token-id responses: on their decoded text, each token ending where its decoded prefix ends.
        int[] ends = [.. Enumerable.Range(1, ids.Length).Select(t => tokenizer.Decode(ids[..t]).EnumerateRunes().Count())];
        return Checked(new SplitText(all[..common], ids, tokenizer.Decode(ids), ends), name);
    }

    static SplitText Checked(SplitText split, string name) => split.Response.Length > 0
        ? split
        : throw RouteException.Invalid($"{name}: there is no response after the prompt; there is nothing to score");

    /// <summary>The steps of a scored response, as Score's step_delimiter gives them (the pair's default beta).</summary>
    public static StepScores Steps(SplitText split, ItemScores scored, string delimiter, double beta)
    {
        int[] ends = StepSplitter.StepEnds(split.ResponseText, split.TokenEnds, delimiter);
        return new StepScores(ends, CreditMath.StepRewards(scored.PolicyLogprobs, scored.ReferenceLogprobs, beta, ends));
    }

    /// <summary>The request's step delimiter, else the setting; checked as Score checks step_delimiter.</summary>
    public static string Delimiter(JsonObject body, RewardOptions options)
    {
        string delimiter = OptionalString(body, "step_delimiter") ?? options.StepDelimiter;
        return delimiter.Length is > 0 and <= StepSplitter.MaxDelimiterLength ? delimiter
            : throw RouteException.Invalid($"step_delimiter must be 1 to {StepSplitter.MaxDelimiterLength} characters, e.g. \"\\n\"");
    }

    public static HfTokenizer Tokenizer(ScoringEngine engine) => engine.Tokenizer
        ?? throw RouteException.Invalid("this server has no tokenizer (no tokenizer.json with the policy), and this route takes text");

    /// <summary>A JSON object body, or a 400 saying what the route expects.</summary>
    public static JsonObject Object(JsonNode? body, string shape) => body as JsonObject
        ?? throw RouteException.Invalid($"the request body must be a JSON object {shape}");

    /// <summary>A list of strings (null entries kept as null); a missing field is an empty list.</summary>
    public static List<string?> Strings(JsonObject body, string field)
    {
        if (body[field] is null) return [];
        if (body[field] is not JsonArray array) throw RouteException.Invalid($"{field} must be a list of strings");
        return [.. array.Select((n, i) => n is null ? null : String(n, $"{field}[{i}]"))];
    }

    public static string String(JsonNode node, string field) =>
        node is JsonValue v && v.TryGetValue(out string? s) ? s : throw RouteException.Invalid($"{field} must be a string");

    public static string? OptionalString(JsonObject body, string field) => body[field] is { } n ? String(n, field) : null;

    /// <summary>The reward a request asks for (its field, else the setting).</summary>
    public static RewardMode Mode(JsonObject body, string field, RewardMode configured) => OptionalString(body, field) is { } name
        ? RewardOptions.ParseMode(name) ?? throw RouteException.Invalid($"{field} is '{name}'; use sequence, step_mean or step_min")
        : configured;

    /// <summary>The number a mode takes from an item's scores: its reward, or the mean or lowest of its step rewards.</summary>
    public static double Reward(ItemScores s, StepScores steps, RewardMode mode) => mode switch
    {
        RewardMode.StepMean => steps.Rewards.Average(),
        RewardMode.StepMin => steps.Rewards.Min(),
        _ => s.Reward,
    };
}
