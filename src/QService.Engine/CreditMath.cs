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
}
