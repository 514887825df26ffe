using System.Globalization;
using System.Text;
using System.Text.Json;
using QService.Client.Evaluation;

namespace QService.Cli.Commands.Eval;

/// <summary>
/// One output row as JSON: `index`, `subset`, then `chosen_reward`, `rejected_reward`, `margin`, `prompt_tokens`,
/// `chosen_tokens`, `rejected_tokens` (and `*_step_rewards`, `*_credits` when asked), or `error` for a bad row. Written
/// by hand with a fixed field order and round-trip numbers, so that equal results are equal bytes.
/// </summary>
static class EvalJson
{
    public static string Line(PairResult r)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteNumber("index", r.Index);
            if (r.Subset != null) w.WriteString("subset", r.Subset);
            if (r.IsBad) w.WriteString("error", r.Error);
            else
            {
                w.WriteNumber("chosen_reward", r.ChosenReward);
                w.WriteNumber("rejected_reward", r.RejectedReward);
                w.WriteNumber("margin", r.Margin);
                w.WriteNumber("prompt_tokens", r.PromptTokens);
                w.WriteNumber("chosen_tokens", r.ChosenTokens);
                w.WriteNumber("rejected_tokens", r.RejectedTokens);
                Numbers(w, "chosen_step_rewards", r.ChosenStepRewards?.Select(v => v));
                Numbers(w, "rejected_step_rewards", r.RejectedStepRewards?.Select(v => v));
                Numbers(w, "chosen_credits", r.ChosenCredits?.Select(v => (double)v));
                Numbers(w, "rejected_credits", r.RejectedCredits?.Select(v => (double)v));
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    static void Numbers(Utf8JsonWriter w, string name, IEnumerable<double>? values)
    {
        if (values is null) return;
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    /// <summary>A line back as a result (for --resume and the summary); null when it is not a complete row.</summary>
    public static PairResult? Parse(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            long index = e.GetProperty("index").GetInt64();
            string? subset = e.TryGetProperty("subset", out var s) ? s.GetString() : null;
            if (e.TryGetProperty("error", out var error)) return new PairResult(index, subset, error.GetString());
            double[]? Doubles(string name) => e.TryGetProperty(name, out var a) ? a.EnumerateArray().Select(x => x.GetDouble()).ToArray() : null;
            float[]? Floats(string name) => Doubles(name)?.Select(x => (float)x).ToArray();
            return new PairResult(index, subset, null, e.GetProperty("chosen_reward").GetDouble(), e.GetProperty("rejected_reward").GetDouble(),
                e.GetProperty("chosen_tokens").GetInt32(), e.GetProperty("rejected_tokens").GetInt32(), e.GetProperty("prompt_tokens").GetInt32(),
                Doubles("chosen_step_rewards"), Doubles("rejected_step_rewards"), Floats("chosen_credits"), Floats("rejected_credits"));
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException) { return null; }
    }

    public static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
