namespace QService.Engine;

/// <summary>The Q math: credits, running Q-values and the sequence reward from two models' log-probabilities.</summary>
public static class CreditMath
{
    /// <summary>
    /// credit_t = beta·(log pi_t − log pi_ref_t); Q_t = credit_0 + … + credit_t; reward = Q_T. Differences
    /// and sums are taken in double (as the reference computation does), then stored as float.
    /// </summary>
    public static (float[] Credits, float[] QValues, double Reward) Compute(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference, double beta)
    {
        if (policy.Length != reference.Length)
            throw new ArgumentException($"policy has {policy.Length} log-probs, reference {reference.Length}. This is a bug.");
        var credits = new float[policy.Length];
        var q = new float[policy.Length];
        double running = 0;
        for (int t = 0; t < policy.Length; t++)
        {
            double credit = beta * ((double)policy[t] - reference[t]);
            running += credit;
            credits[t] = (float)credit;
            q[t] = (float)running;
        }
        return (credits, q, running);
    }

    /// <summary>
    /// Each step's reward: the sum of its credits, taken in double exactly as the reward is, so the step
    /// rewards add up to the reward. <paramref name="stepEnds"/> holds the index of each step's last token.
    /// </summary>
    public static double[] StepRewards(ReadOnlySpan<float> policy, ReadOnlySpan<float> reference, double beta, int[] stepEnds)
    {
        var rewards = new double[stepEnds.Length];
        int start = 0;
        for (int s = 0; s < stepEnds.Length; s++)
        {
            double sum = 0;
            for (int t = start; t <= stepEnds[s]; t++) sum += beta * ((double)policy[t] - reference[t]);
            rewards[s] = sum;
            start = stepEnds[s] + 1;
        }
        return rewards;
    }
}
