using QService.Engine;

namespace QService.Host.Rewards;

/// <summary>
/// POST /get_reward as OpenRLHF's remote reward model (openrlhf/cli/serve_rm.py): {"query": [full text], "prompts": [prompt],
/// "labels": [...]} answered {"rewards": [r], "scores": [r], "extra_logs": {...}}, one entry per query; empty lists get empty lists
/// (the extra servers of a sharded batch). The labels are accepted and not used: the pair's reward needs no reference answer.
/// </summary>
public static class OpenRlhfReward
{
    public const string Route = "/get_reward";
    const string Shape = "{\"query\": [text], \"prompts\": [text], \"labels\": [...]}";

    public static async Task<RouteAnswer> HandleAsync(RouteRequest request, ScoringEngine engine, RewardOptions options)
    {
        var body = RewardText.Object(request.Body, Shape);
        var queries = RewardText.Strings(body, "query");
        var prompts = RewardText.Strings(body, "prompts");
        var mode = RewardText.Mode(body, "reward_mode", RewardOptions.ParseMode(options.Mode)!.Value);
        string delimiter = RewardText.Delimiter(body, options);
        if (prompts.Count != queries.Count)
            throw RouteException.Invalid($"query has {queries.Count} entries and prompts {prompts.Count}; send one prompt per query");
        if (queries.Count == 0) return new RouteAnswer(new { rewards = Array.Empty<double>(), scores = Array.Empty<double>(), extra_logs = new { } }, 0, 0);

        var tokenizer = RewardText.Tokenizer(engine);
        var splits = queries.Select((q, i) => RewardText.Split(tokenizer, q ?? throw RouteException.Invalid($"query[{i}] is null"), prompts[i], $"query[{i}]"))
            .ToArray();
        var items = splits.Select((x, i) => new ScoreItemInput { Id = i.ToString(), PromptTokenIds = x.Prompt, ResponseTokenIds = x.Response }).ToArray();
        var scored = await engine.ScoreAsync(items, new ScoreOptions(), request.Cancellation, request.Caller);
        var steps = scored.Select((s, i) => RewardText.Steps(splits[i], s, delimiter, engine.Info.DefaultBeta)).ToArray();
        double[] rewards = [.. scored.Select((s, i) => RewardText.Reward(s, steps[i], mode))];
        var extra = new Dictionary<string, double[]>
        {
            ["qservice_prompt_tokens"] = [.. scored.Select(s => (double)s.PromptTokens)],
            ["qservice_tokens_scored"] = [.. scored.Select(s => (double)s.TokenIds.Length)],
            ["qservice_min_q"] = [.. scored.Select(s => (double)s.QValues.Min())],
            ["qservice_steps"] = [.. steps.Select(s => (double)s.Ends.Length)],
            ["qservice_sequence_reward"] = [.. scored.Select(s => s.Reward)],
        };
        return new RouteAnswer(new { rewards, scores = rewards, extra_logs = extra }, items.Length, scored.Sum(s => s.PromptTokens + s.TokenIds.Length));
    }
}
