using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Client.Evaluation;
using QService.Client.Rendering;

namespace QService.Cli.Commands.Eval;

/// <summary>The summary as text (tables) and as one JSON object (`--json`).</summary>
static class EvalSummaryText
{
    public static string Interval(Accuracy a) => $"{a.Value:P1} (95 % Wilson interval {a.Interval.Low:P1} to {a.Interval.High:P1}; {a.Correct}/{a.Pairs})";

    public static void Print(EvaluationSummary s, EvalSpeed speed)
    {
        Console.WriteLine($"pairs {s.Pairs} of {s.Rows} rows ({s.BadRows.Count} bad)");
        Console.WriteLine($"accuracy {Interval(s.Accuracy)}, ties {s.Accuracy.Ties}");
        Console.WriteLine($"margin (chosen - rejected reward): mean {Signed.Format(s.MeanMargin)}, median {Signed.Format(s.MedianMargin)}");
        Console.WriteLine($"length-normalised (reward / tokens, SimPO's mean credit): accuracy {Interval(s.NormalisedAccuracy)}, " +
            $"mean margin {Signed.Format(s.MeanNormalisedMargin)}");
        if (s.StepAccuracy is Accuracy step) Console.WriteLine($"step-level accuracy (lowest step reward): {Interval(step)}");
        if (s.Subsets.Count > 0)
        {
            Console.WriteLine($"\n{"subset",-24} {"pairs",7} {"accuracy",9}  95 % interval");
            foreach (var (name, a) in s.Subsets)
                Console.WriteLine($"{Display.Truncate(name, 24),-24} {a.Pairs,7} {a.Value,9:P1}  {a.Interval.Low:P1} to {a.Interval.High:P1}");
        }
        PrintBuckets("response tokens (pair mean)", s.ByLength);
        PrintBuckets("chosen - rejected tokens", s.ByLengthDifference);
        if (s.BadRows.Count > 0)
        {
            Console.WriteLine($"\nbad rows ({s.BadRows.Count}; not scored, listed in the output with their error):");
            foreach (var (index, error) in s.BadRows.Take(50)) Console.WriteLine($"  row {index}: {error}");
            if (s.BadRows.Count > 50) Console.WriteLine($"  ... and {s.BadRows.Count - 50} more (see the output's `error` field)");
        }
        Console.WriteLine($"\nthis run: {speed.Rows} rows in {speed.Seconds:F1} s, {speed.RowsPerSecond:F1} rows/s, " +
            $"{speed.PairTokensPerSecond:F0} pair tokens/s (each response with its prompt, as `qservice bench` counts)");
    }

    static void PrintBuckets(string title, IReadOnlyList<Bucket> buckets)
    {
        if (buckets.Count == 0) return;
        Console.WriteLine($"\n{title,-28} {"pairs",7} {"accuracy",9} {"mean margin",12}");
        foreach (var b in buckets)
            Console.WriteLine($"{$"{b.Low:0.#} to {b.High:0.#}",-28} {b.Accuracy.Pairs,7} {b.Accuracy.Value,9:P1} {Signed.Format(b.MeanMargin),12}");
    }

    public static string Json(EvaluationSummary s, EvalSpeed speed)
    {
        var o = new JsonObject
        {
            ["rows"] = s.Rows,
            ["pairs"] = s.Pairs,
            ["accuracy"] = Num(s.Accuracy.Value),
            ["accuracy_interval"] = Pair(s.Accuracy.Interval),
            ["interval"] = "wilson-95",
            ["correct"] = s.Accuracy.Correct,
            ["ties"] = s.Accuracy.Ties,
            ["mean_margin"] = Num(s.MeanMargin),
            ["median_margin"] = Num(s.MedianMargin),
            ["normalised"] = new JsonObject { ["accuracy"] = Num(s.NormalisedAccuracy.Value), ["accuracy_interval"] = Pair(s.NormalisedAccuracy.Interval),
                ["mean_margin"] = Num(s.MeanNormalisedMargin) },
            ["step_accuracy"] = s.StepAccuracy is Accuracy step ? Num(step.Value) : null,
            ["subsets"] = new JsonObject(s.Subsets.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)AccuracyNode(kv.Value)))),
            ["by_length"] = Buckets(s.ByLength),
            ["by_length_difference"] = Buckets(s.ByLengthDifference),
            ["bad_rows"] = s.BadRows.Count,
            ["bad_row_list"] = new JsonArray(s.BadRows.Select(b => (JsonNode)new JsonObject { ["index"] = b.Index, ["error"] = b.Error }).ToArray()),
            ["seconds"] = Num(speed.Seconds),
            ["rows_this_run"] = speed.Rows,
            ["pair_tokens_per_second"] = Num(speed.PairTokensPerSecond),
        };
        return o.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    static JsonObject AccuracyNode(Accuracy a) => new() { ["pairs"] = a.Pairs, ["accuracy"] = Num(a.Value), ["accuracy_interval"] = Pair(a.Interval) };

    static JsonArray Buckets(IReadOnlyList<Bucket> buckets) => new(buckets.Select(b => (JsonNode)new JsonObject
    {
        ["low"] = b.Low, ["high"] = b.High, ["pairs"] = b.Accuracy.Pairs, ["accuracy"] = Num(b.Accuracy.Value), ["mean_margin"] = Num(b.MeanMargin),
    }).ToArray());

    static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    static JsonArray Pair((double Low, double High) p) => [Num(p.Low), Num(p.High)];
}
