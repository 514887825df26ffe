namespace QService.Client.Evaluation;

/// <summary>
/// One evaluated pair: both implicit rewards (the sum of each response's credits), the margin chosen − rejected, the
/// response lengths in tokens, each step's reward with a step delimiter, and each token's credit when asked for; or,
/// for a bad row, only <see cref="Error"/>. <see cref="Row"/> is the scored pair (null when read back from an output file).
/// </summary>
public sealed record PairResult(long Index, string? Subset, string? Error, double ChosenReward = 0, double RejectedReward = 0,
    int ChosenTokens = 0, int RejectedTokens = 0, int PromptTokens = 0, double[]? ChosenStepRewards = null, double[]? RejectedStepRewards = null,
    float[]? ChosenCredits = null, float[]? RejectedCredits = null, PreferenceRow? Row = null)
{
    public bool IsBad => Error != null;
    public double Margin => ChosenReward - RejectedReward;
    /// <summary>RewardBench's rule: right only when the chosen reward is strictly higher (a tie is wrong).</summary>
    public bool Correct => !IsBad && ChosenReward > RejectedReward;
    /// <summary>Tokens through both models counted as `qservice bench` counts them: each response with its prompt.</summary>
    public long PairTokens => 2L * PromptTokens + ChosenTokens + RejectedTokens;
}

/// <summary>How <see cref="PreferenceEvaluator"/> scores.</summary>
public sealed record EvaluationOptions
{
    /// <summary>Pairs per Score request (two items each, chosen next to rejected, so the prompt is computed once).</summary>
    public int PairsPerRequest { get; init; } = 16;
    /// <summary>Requests in flight on each server.</summary>
    public int RequestsPerServer { get; init; } = 4;
    public float? Beta { get; init; }
    public string? StepDelimiter { get; init; }
    public bool IncludeCredits { get; init; }
    public string? Policy { get; init; }
    /// <summary>
    /// Send the requests as reproducible (ScoreRequest.reproducible): each is batched alone and reuses no other request's cached
    /// prefixes, so a rerun or a resume gets the same bits from a server of the same configuration and CPU type, whatever
    /// else it serves. Default true; false lets the server batch and cache them with other work (faster on a busy or warm
    /// server, the last bits then varying between runs).
    /// </summary>
    public bool Reproducible { get; init; } = true;
}

/// <summary>A failure that ends the evaluation (every row would fail alike), e.g. a conversation sent to a server without a chat template.</summary>
public sealed class EvaluationException(string message, Exception? inner = null) : Exception(message, inner);
