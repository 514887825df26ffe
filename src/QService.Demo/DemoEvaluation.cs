using QService.Engine;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;

namespace QService.Demo;

/// <summary>A held-out review scored token by token, as the service scores it: its true reward, credits, Q-values and implicit reward.</summary>
public sealed record ScoredReview(Review Review, int TrueReward, string[] Tokens, float[] Credits, float[] Q, double ImplicitReward)
{

    /// <summary>Q after the first ceil(fraction·T) response tokens.</summary>
    public double QAt(double fraction) => Q[Math.Max(0, (int)Math.Ceiling(fraction * Q.Length) - 1)];
}

/// <summary>Measures a demo pair on held-out reviews: what the credits and Q-values say about the true reward.</summary>
public sealed class DemoEvaluation(CausalLanguageModel policy, CausalLanguageModel reference, HfTokenizer tokenizer, double beta)
{
    /// <summary>Scores reviews (response + EOS, as a finished response) with both models, in batches.</summary>
    public List<ScoredReview> Score(IReadOnlyList<Review> reviews)
    {
        var results = new List<ScoredReview>();
        foreach (var chunk in reviews.Chunk(256))
        {
            var encoded = chunk.Select(r => DemoTrainer.Encode(tokenizer, r.Prompt, r.Response)).ToList();
            var seqs = encoded.Select(e => e.Tokens).ToList();
            var firsts = encoded.Select(e => e.PromptTokens).ToList();
            var p = policy.ScoreTokens(seqs, firsts);
            var q = reference.ScoreTokens(seqs, firsts);
            for (int i = 0; i < chunk.Length; i++)
            {
                // The service's own Q math (QService.Engine.CreditMath).
                var (credits, qv, reward) = CreditMath.Compute(p[i].Logprobs, q[i].Logprobs, beta);
                var tokens = seqs[i][firsts[i]..].Select(tokenizer.TokenSurface).ToArray();
                results.Add(new ScoredReview(chunk[i], ReviewLanguage.Reward(chunk[i].Response), tokens, credits, qv, reward));
            }
        }
        return results;
    }

    /// <summary>Fraction of (better, worse) pairs whose implicit reward ranks them the same way as the true reward.</summary>
    public double ImplicitRewardAccuracy(IReadOnlyList<(Review Better, Review Worse)> pairs)
    {
        var better = Score(pairs.Select(p => p.Better).ToList());
        var worse = Score(pairs.Select(p => p.Worse).ToList());
        return better.Zip(worse).Count(x => x.First.ImplicitReward > x.Second.ImplicitReward) / (double)pairs.Count;
    }

    /// <summary>Held-out pairs of the same prompt with different true rewards, from the grammar, for a seed.</summary>
    public static List<(Review Better, Review Worse)> HeldOutPairs(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => ReviewLanguage.SamplePair(rng)).ToList();
    }

    /// <summary>Pairwise ranking accuracy of Q at a prefix fraction, over pairs with different true rewards.</summary>
    public static double PrefixRankingAccuracy(IReadOnlyList<(ScoredReview Better, ScoredReview Worse)> pairs, double fraction) =>
        pairs.Count(p => p.Better.QAt(fraction) > p.Worse.QAt(fraction)) / (double)pairs.Count;

    /// <summary>Pearson correlation between Q at a prefix fraction and the true reward.</summary>
    public static double PrefixCorrelation(IReadOnlyList<ScoredReview> reviews, double fraction)
    {
        var x = reviews.Select(r => r.QAt(fraction)).ToArray();
        var y = reviews.Select(r => (double)r.TrueReward).ToArray();
        double mx = x.Average(), my = y.Average();
        double cov = x.Zip(y).Sum(p => (p.First - mx) * (p.Second - my));
        double vx = x.Sum(v => (v - mx) * (v - mx)), vy = y.Sum(v => (v - my) * (v - my));
        return cov / Math.Sqrt(vx * vy);
    }
}
