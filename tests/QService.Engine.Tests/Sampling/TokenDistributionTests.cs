using QService.Engine.Sampling;

namespace QService.Engine.Tests.Sampling;

/// <summary>The next-token distribution against a direct, sort-everything reading of its definition.</summary>
public class TokenDistributionTests
{
    static float[] LogSoftmax(double[] logits)
    {
        double lse = Math.Log(logits.Sum(Math.Exp));
        return [.. logits.Select(l => (float)(l - lse))];
    }

    /// <summary>The definition: mix, temperature, softmax, keep the top_k, renormalise, keep the smallest top set reaching top_p.</summary>
    static Dictionary<int, double> Expected(float[] policy, float[] reference, double alpha, double temperature, int topK, double topP)
    {
        var p = Enumerable.Range(0, policy.Length).Select(v => Math.Exp(((1 - alpha) * reference[v] + alpha * policy[v]) / temperature)).ToArray();
        var order = Enumerable.Range(0, p.Length).OrderByDescending(v => p[v]).ThenBy(v => v).ToList();
        if (topK > 0) order = order.Take(topK).ToList();
        double kept = order.Sum(v => p[v]), cumulative = 0;
        var nucleus = new List<int>();
        foreach (int v in order)
        {
            if (topP >= 1) { nucleus.AddRange(order); break; } // off, as in HuggingFace
            nucleus.Add(v);
            cumulative += p[v];
            if (cumulative >= topP * kept) break;
        }
        double total = nucleus.Sum(v => p[v]);
        return nucleus.ToDictionary(v => v, v => p[v] / total);
    }

    public static TheoryData<double, double, int, double> Settings => new()
    {
        { 0, 1, 0, 1 }, { 1, 1, 0, 1 }, { 3, 0.7, 0, 1 }, { 0.5, 1.3, 5, 1 }, { 2, 1, 0, 0.8 }, { 1, 0.5, 7, 0.6 }, { 4, 2, 1, 1 },
    };

    [Theory, MemberData(nameof(Settings))]
    public void Probabilities_FollowTheDefinition(double alpha, double temperature, int topK, double topP)
    {
        var random = new Random(3);
        var policy = LogSoftmax([.. Enumerable.Range(0, 40).Select(_ => random.NextDouble() * 12)]);
        var reference = LogSoftmax([.. Enumerable.Range(0, 40).Select(_ => random.NextDouble() * 12)]);
        var expected = Expected(policy, reference, alpha, temperature, topK, topP);
        var (ids, probabilities) = new TokenDistribution(alpha, temperature, topK, topP).Probabilities(policy, reference);
        Assert.Equal(expected.Keys.Order(), ids.Order());
        for (int i = 0; i < ids.Length; i++) Assert.Equal(expected[ids[i]], probabilities[i], 1e-9);
    }

    [Fact]
    public void TopP_IsMeasuredAgainstTheWholeMass_WhenALargeVocabularysTailIsBelowTheHead()
    {
        // 32,000 tokens: one at weight 1, nine at 0.05 (the head), and a tail of 31,990 tokens just under the
        // head's share of 1e-6, which together hold 2 % of the mass. top_p 0.95 of the whole mass needs all ten
        // head tokens; 0.95 of the head's mass alone would stop at nine.
        const int vocab = 32000;
        var logits = new double[vocab];
        for (int v = 0; v < vocab; v++) logits[v] = v == 0 ? 0 : v < 10 ? Math.Log(0.05) : Math.Log(0.99e-6);
        var policy = LogSoftmax(logits);
        var expected = Expected(policy, policy, 1, 1, 0, 0.95);
        var (ids, probabilities) = new TokenDistribution(Alpha: 1, TopP: 0.95).Probabilities(policy, policy);
        Assert.Equal(10, expected.Count);
        Assert.Equal(expected.Keys.Order(), ids.Order());
        for (int i = 0; i < ids.Length; i++) Assert.Equal(expected[ids[i]], probabilities[i], 1e-9);
        // Draws agree with the same nucleus: the last head token is reachable.
        Assert.Equal(9, new TokenDistribution(Alpha: 1, TopP: 0.95).Draw(policy, policy, 0.9999));
    }

    [Fact]
    public void Draw_WalksTheCumulativeDistribution()
    {
        var policy = LogSoftmax([0, Math.Log(3), Math.Log(6)]); // probabilities 0.1, 0.3, 0.6
        var plain = new TokenDistribution(Alpha: 1);
        Assert.Equal(0, plain.Draw(policy, policy, 0.05));
        Assert.Equal(1, plain.Draw(policy, policy, 0.35));
        Assert.Equal(2, plain.Draw(policy, policy, 0.999999));
        Assert.Equal(2, new TokenDistribution(1, TopK: 1).Draw(policy, policy, 0.0));
    }

    [Fact]
    public void AModelThatRulesATokenOut_DoesNotTurnIntoNaN_WhenTheOtherIsSampled()
    {
        float[] policy = [float.NegativeInfinity, 0f], reference = [MathF.Log(0.5f), MathF.Log(0.5f)];
        var (ids, probabilities) = new TokenDistribution(Alpha: 0).Probabilities(policy, reference);
        Assert.Equal([0.5, 0.5], probabilities);
        Assert.Equal([0, 1], ids);
    }
}
