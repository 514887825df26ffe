namespace QService.Client.Evaluation;

/// <summary>Accuracy over some pairs with its 95 % Wilson score interval (sound near 0 and 1 and for few pairs, unlike the normal one).</summary>
public sealed record Accuracy(int Pairs, int Correct, int Ties)
{
    public double Value => Pairs == 0 ? double.NaN : Correct / (double)Pairs;
    public (double Low, double High) Interval => Wilson(Correct, Pairs);

    public const double Z95 = 1.959963984540054;

    /// <summary>The Wilson score interval: (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n).</summary>
    public static (double Low, double High) Wilson(int correct, int n, double z = Z95)
    {
        if (n == 0) return (double.NaN, double.NaN);
        double p = correct / (double)n, z2 = z * z;
        double center = p + z2 / (2 * n), spread = z * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)), scale = 1 + z2 / n;
        return ((center - spread) / scale, (center + spread) / scale);
    }

    public static Accuracy Of(IEnumerable<(double Chosen, double Rejected)> pairs)
    {
        int n = 0, correct = 0, ties = 0;
        foreach (var (c, r) in pairs) { n++; if (c > r) correct++; else if (c == r) ties++; }
        return new Accuracy(n, correct, ties);
    }
}

/// <summary>Accuracy over the pairs whose value falls in [<see cref="Low"/>, <see cref="High"/>] (a length bucket).</summary>
public sealed record Bucket(double Low, double High, Accuracy Accuracy, double MeanMargin);

/// <summary>
/// The summary of an evaluation: accuracy (chosen reward strictly above rejected; a tie counts as wrong, as in RewardBench)
/// with its Wilson interval, mean and median margin, accuracy per subset, by response length (the pair's mean response
/// tokens) and by length difference (chosen − rejected tokens), in quintile buckets; the same ranking by length-normalised
/// reward (reward / tokens: SimPO's mean credit, which is the reward per token); with step rewards, step-level accuracy
/// (the pair ranked by each response's lowest step reward, the PRM convention: a response is as good as its worst step);
/// and the bad rows by row number.
/// </summary>
public sealed class EvaluationSummary
{
    public int Rows { get; private init; }
    public int Pairs { get; private init; }
    public required Accuracy Accuracy { get; init; }
    public double MeanMargin { get; private init; }
    public double MedianMargin { get; private init; }
    public required Accuracy NormalisedAccuracy { get; init; }
    public double MeanNormalisedMargin { get; private init; }
    public Accuracy? StepAccuracy { get; private init; }
    public required IReadOnlyDictionary<string, Accuracy> Subsets { get; init; }
    public required IReadOnlyList<Bucket> ByLength { get; init; }
    public required IReadOnlyList<Bucket> ByLengthDifference { get; init; }
    public required IReadOnlyList<(long Index, string Error)> BadRows { get; init; }

    public static EvaluationSummary Of(IReadOnlyList<PairResult> results)
    {
        var good = results.Where(r => !r.IsBad).ToList();
        var margins = good.Select(r => r.Margin).Order().ToArray();
        var normalised = good.Select(r => (r.ChosenReward / Math.Max(1, r.ChosenTokens), r.RejectedReward / Math.Max(1, r.RejectedTokens))).ToList();
        var stepped = good.Where(r => r.ChosenStepRewards is { Length: > 0 } && r.RejectedStepRewards is { Length: > 0 }).ToList();
        return new EvaluationSummary
        {
            Rows = results.Count,
            Pairs = good.Count,
            Accuracy = Accuracy.Of(good.Select(r => (r.ChosenReward, r.RejectedReward))),
            MeanMargin = margins.Length == 0 ? double.NaN : margins.Average(),
            MedianMargin = Median(margins),
            NormalisedAccuracy = Accuracy.Of(normalised),
            MeanNormalisedMargin = normalised.Count == 0 ? double.NaN : normalised.Average(p => p.Item1 - p.Item2),
            StepAccuracy = stepped.Count == 0 ? null : Accuracy.Of(stepped.Select(r => (r.ChosenStepRewards!.Min(), r.RejectedStepRewards!.Min()))),
            Subsets = good.Where(r => r.Subset != null).GroupBy(r => r.Subset!).OrderBy(g => g.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => Accuracy.Of(g.Select(r => (r.ChosenReward, r.RejectedReward)))),
            ByLength = Buckets(good, r => (r.ChosenTokens + r.RejectedTokens) / 2.0),
            ByLengthDifference = Buckets(good, r => r.ChosenTokens - r.RejectedTokens),
            BadRows = results.Where(r => r.IsBad).Select(r => (r.Index, r.Error!)).ToList(),
        };
    }

    /// <summary>The middle value of sorted values (the mean of the middle two for an even count).</summary>
    public static double Median(double[] sorted) => sorted.Length == 0 ? double.NaN
        : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;

    /// <summary>
    /// Up to five buckets of about equal size by <paramref name="key"/> (quintiles); pairs with equal keys stay in one bucket,
    /// so there are fewer when the keys take few values.
    /// </summary>
    public static List<Bucket> Buckets(IReadOnlyList<PairResult> pairs, Func<PairResult, double> key, int count = 5)
    {
        var sorted = pairs.Select(p => (Key: key(p), Pair: p)).OrderBy(p => p.Key).ToList();
        var buckets = new List<Bucket>();
        for (int start = 0; start < sorted.Count;)
        {
            int end = Math.Min(sorted.Count, start + (int)Math.Ceiling(sorted.Count / (double)count));
            while (end < sorted.Count && sorted[end].Key == sorted[end - 1].Key) end++;
            var members = sorted.GetRange(start, end - start);
            buckets.Add(new Bucket(members[0].Key, members[^1].Key, Accuracy.Of(members.Select(m => (m.Pair.ChosenReward, m.Pair.RejectedReward))),
                members.Average(m => m.Pair.Margin)));
            start = end;
        }
        return buckets;
    }
}
