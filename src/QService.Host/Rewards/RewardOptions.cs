namespace QService.Host.Rewards;

/// <summary>Which number a reward route returns per sample: the sequence's implicit reward, or PRIME's process reward over steps.</summary>
public enum RewardMode { Sequence, StepMean, StepMin }

/// <summary>
/// The Rewards section: the reward /get_reward and /reward return unless a request says otherwise, and the text that ends a step.
/// </summary>
public sealed class RewardOptions
{
    public const string Section = "Rewards";

    /// <summary>sequence (the implicit reward, the default), step_mean or step_min (the mean or the lowest step reward).</summary>
    public string Mode { get; set; } = "sequence";

    /// <summary>The text that ends a step (the engine's step_delimiter); steps are counted in every /get_reward answer.</summary>
    public string StepDelimiter { get; set; } = "\n";

    /// <summary>A mode's name as the setting and the request field spell it; null when it is none of them.</summary>
    public static RewardMode? ParseMode(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "sequence" => RewardMode.Sequence,
        "step_mean" => RewardMode.StepMean,
        "step_min" => RewardMode.StepMin,
        _ => null,
    };

    /// <summary>What is wrong with the section, as sentences naming the setting (checked at start-up with the others).</summary>
    public static IEnumerable<string> Problems(IConfiguration configuration)
    {
        var o = configuration.GetSection(Section).Get<RewardOptions>() ?? new RewardOptions();
        if (ParseMode(o.Mode) is null) yield return $"Rewards:Mode is '{o.Mode}'; use sequence, step_mean or step_min";
        if (string.IsNullOrEmpty(o.StepDelimiter) || o.StepDelimiter.Length > Engine.StepSplitter.MaxDelimiterLength)
            yield return $"Rewards:StepDelimiter must be 1 to {Engine.StepSplitter.MaxDelimiterLength} characters, e.g. \"\\n\"";
    }
}
