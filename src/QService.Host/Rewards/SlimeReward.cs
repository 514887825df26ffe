using QService.Engine;

namespace QService.Host.Rewards;

/// <summary>
/// POST /reward as slime's remote reward model (slime/rollout/rm_hub remote_rm): {"prompt", "response", "label"} answered with a
/// bare JSON number, the reward, which slime takes as it is (no --reward-key needed). The label is accepted and not used.
/// </summary>
public static class SlimeReward
{
    public const string Route = "/reward";
    const string Shape = "{\"prompt\": text, \"response\": text, \"label\": ...}";

    public static async Task<RouteAnswer> HandleAsync(RouteRequest request, ScoringEngine engine, RewardOptions options)
    {
        var body = RewardText.Object(request.Body, Shape);
        string prompt = RewardText.OptionalString(body, "prompt") ?? throw RouteException.Invalid($"prompt is missing; send {Shape}");
        string response = RewardText.OptionalString(body, "response") ?? throw RouteException.Invalid($"response is missing; send {Shape}");
        var mode = RewardText.Mode(body, "reward_mode", RewardOptions.ParseMode(options.Mode)!.Value);
        string delimiter = RewardText.Delimiter(body, options);
        // Tokenised as slime does: prompt ids then response ids, neither with added special tokens.
        var split = RewardText.Split(RewardText.Tokenizer(engine), prompt + response, prompt, "response");
        var item = new ScoreItemInput { PromptTokenIds = split.Prompt, ResponseTokenIds = split.Response };
        var scored = (await engine.ScoreAsync([item], new ScoreOptions(), request.Cancellation, request.Caller))[0];
        var steps = RewardText.Steps(split, scored, delimiter, engine.Info.DefaultBeta);
        return new RouteAnswer(RewardText.Reward(scored, steps, mode), 1, scored.PromptTokens + scored.TokenIds.Length);
    }
}
