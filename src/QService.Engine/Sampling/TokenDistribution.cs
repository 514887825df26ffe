namespace QService.Engine.Sampling;

/// <summary>
/// The distribution a next token is drawn from, given both models' log-probabilities: the guided mix
/// (1−alpha)·log pi_ref + alpha·log pi, divided by the temperature, cut to top_k, then to top_p (renormalised
/// after top_k), as HuggingFace's warpers do it.
/// </summary>
public sealed record TokenDistribution(double Alpha, double Temperature = 1, int TopK = 0, double TopP = 1)
{
    /// <summary>Tokens below this share of the most likely one are sorted only when the head above it cannot decide top_k/top_p.</summary>
    const double HeadShare = 1e-6;

    /// <summary>The tokens that can be drawn and their probabilities (summing to 1), most likely first when cut.</summary>
    public (int[] Ids, double[] Probabilities) Probabilities(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference)
    {
        var (ids, weights) = Candidates(policy, reference);
        double total = weights.Sum();
        return (ids, [.. weights.Select(w => w / total)]);
    }

    bool Cuts(int vocab) => TopK > 0 && TopK < vocab || TopP < 1;

    /// <summary>The token at <paramref name="u"/> ∈ [0, 1) of the cumulative distribution over <see cref="Probabilities"/>' order.</summary>
    public int Draw(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference, double u)
    {
        if (!Cuts(policy.Length)) return DrawUncut(policy, reference, u);
        var (ids, weights) = Candidates(policy, reference);
        double target = u * weights.Sum(), cumulative = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            cumulative += weights[i];
            if (cumulative > target) return ids[i];
        }
        return ids[^1]; // u·total rounded up to the total
    }

    /// <summary>Without top_k or top_p, in token order and without allocating: this runs for every sample at every step.</summary>
    int DrawUncut(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference, double u)
    {
        double max = double.NegativeInfinity;
        for (int v = 0; v < policy.Length; v++) max = Math.Max(max, Scaled(policy, reference, v));
        double total = 0;
        for (int v = 0; v < policy.Length; v++) total += Math.Exp(Scaled(policy, reference, v) - max);
        double target = u * total, cumulative = 0;
        int last = 0;
        for (int v = 0; v < policy.Length; v++)
        {
            double weight = Math.Exp(Scaled(policy, reference, v) - max);
            if (weight == 0) continue;
            cumulative += weight;
            last = v;
            if (cumulative > target) return v;
        }
        return last;
    }

    /// <summary>The guided mix over the temperature; alpha 0 and 1 take one model alone, so that a −inf of the other cannot turn into NaN.</summary>
    double Scaled(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference, int v) =>
        (Alpha == 0 ? reference[v] : Alpha == 1 ? policy[v] : (1 - Alpha) * reference[v] + Alpha * policy[v]) / Temperature;

    /// <summary>Unnormalised weights exp((mix − max)/T) of the tokens that survive top_k and top_p.</summary>
    (int[] Ids, double[] Weights) Candidates(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference)
    {
        int vocab = policy.Length;
        var weights = new double[vocab];
        double max = double.NegativeInfinity;
        for (int v = 0; v < vocab; v++)
        {
            weights[v] = Scaled(policy, reference, v);
            if (weights[v] > max) max = weights[v];
        }
        double total = 0;
        for (int v = 0; v < vocab; v++) total += weights[v] = Math.Exp(weights[v] - max);
        bool cutK = TopK > 0 && TopK < vocab, cutP = TopP < 1;
        if (!Cuts(vocab)) return ([.. Enumerable.Range(0, vocab)], weights);

        // Only the head needs sorting when it already holds top_k tokens (or top_p of the mass): the cut ends inside it.
        var head = Enumerable.Range(0, vocab).Where(v => weights[v] >= HeadShare).ToArray();
        bool headDecides = cutK ? head.Length >= TopK : head.Sum(v => weights[v]) >= TopP * total;
        var order = headDecides ? head : [.. Enumerable.Range(0, vocab)];
        Array.Sort(order, (a, b) => weights[b].CompareTo(weights[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int keep = cutK ? Math.Min(TopK, order.Length) : order.Length;
        if (cutP)
        {
            // The nucleus is top_p of the mass that survives top_k: the top_k tokens when cut, else the whole
            // distribution (also when only the head was sorted: the tail below it still counts).
            double kept = 0;
            if (cutK) for (int i = 0; i < keep; i++) kept += weights[order[i]];
            else kept = total;
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += weights[order[i]];
                if (cumulative >= TopP * kept) { keep = i + 1; break; }
            }
        }
        var ids = order[..keep];
        return (ids, [.. ids.Select(v => weights[v])]);
    }
}
