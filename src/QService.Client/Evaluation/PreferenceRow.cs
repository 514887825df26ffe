using QService.Protos.V1;

namespace QService.Client.Evaluation;

/// <summary>
/// One preference pair as read from a dataset, ready to score: the prompt and both responses as ScoreItems (text, token ids
/// or a conversation), or the reason the row cannot be scored (<see cref="Error"/>). <see cref="Index"/> is the row's 0-based
/// position in the input, bad rows counted.
/// </summary>
public sealed record PreferenceRow(long Index, string? Subset, ScoreItem? Chosen, ScoreItem? Rejected, string? Error)
{
    public bool IsBad => Error != null;

    public static PreferenceRow Bad(long index, string? subset, string error) => new(index, subset, null, null, error);
}

/// <summary>Which dataset columns hold what (TRL's names by default); <see cref="Subset"/> is optional (RewardBench's `subset`).</summary>
public sealed record PreferenceColumns(string Prompt = "prompt", string Chosen = "chosen", string Rejected = "rejected", string Subset = "subset");
