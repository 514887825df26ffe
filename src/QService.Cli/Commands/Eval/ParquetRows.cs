using Parquet.Schema;
using QService.Client.Evaluation;

namespace QService.Cli.Commands.Eval;

/// <summary>The Parquet form of an output row: the JSONL fields as columns (null where a bad row has none; empty lists when not asked for).</summary>
static class ParquetRows
{
    public static readonly ParquetSchema Schema = new(
        new DataField<long>("index"), new DataField<string?>("subset"), new DataField<string?>("error"),
        new DataField<double?>("chosen_reward"), new DataField<double?>("rejected_reward"), new DataField<double?>("margin"),
        new DataField<int?>("prompt_tokens"), new DataField<int?>("chosen_tokens"), new DataField<int?>("rejected_tokens"),
        new ListField("chosen_step_rewards", new DataField<double>("element")), new ListField("rejected_step_rewards", new DataField<double>("element")),
        new ListField("chosen_credits", new DataField<float>("element")), new ListField("rejected_credits", new DataField<float>("element")));

    public static IDictionary<string, object?> ToRow(PairResult r)
    {
        bool ok = !r.IsBad;
        return new Dictionary<string, object?>
        {
            ["index"] = r.Index, ["subset"] = r.Subset, ["error"] = r.Error,
            ["chosen_reward"] = ok ? r.ChosenReward : null, ["rejected_reward"] = ok ? r.RejectedReward : null, ["margin"] = ok ? r.Margin : null,
            ["prompt_tokens"] = ok ? r.PromptTokens : null, ["chosen_tokens"] = ok ? r.ChosenTokens : null, ["rejected_tokens"] = ok ? r.RejectedTokens : null,
            ["chosen_step_rewards"] = (r.ChosenStepRewards ?? []).ToList(), ["rejected_step_rewards"] = (r.RejectedStepRewards ?? []).ToList(),
            ["chosen_credits"] = (r.ChosenCredits ?? []).ToList(), ["rejected_credits"] = (r.RejectedCredits ?? []).ToList(),
        };
    }

    public static PairResult FromRow(IReadOnlyDictionary<string, object?> row)
    {
        // Parquet.Net's untyped reader leaves out the columns that are null in a row.
        object? Get(string name) => row.TryGetValue(name, out var v) ? v : null;
        long index = Convert.ToInt64(Get("index"));
        string? subset = Get("subset") as string;
        if (Get("error") is string error) return new PairResult(index, subset, error);
        double[]? Doubles(string name) => Get(name) is System.Collections.IList { Count: > 0 } l ? l.Cast<object>().Select(Convert.ToDouble).ToArray() : null;
        float[]? Floats(string name) => Doubles(name)?.Select(x => (float)x).ToArray();
        return new PairResult(index, subset, null, Convert.ToDouble(Get("chosen_reward")), Convert.ToDouble(Get("rejected_reward")),
            Convert.ToInt32(Get("chosen_tokens")), Convert.ToInt32(Get("rejected_tokens")), Convert.ToInt32(Get("prompt_tokens")),
            Doubles("chosen_step_rewards"), Doubles("rejected_step_rewards"), Floats("chosen_credits"), Floats("rejected_credits"));
    }
}
