namespace QService.Engine.Tests;

public class CreditMathTests
{
    [Fact]
    public void Credits_AreBetaTimesLogRatio_QIsTheirRunningSum_RewardTheTotal()
    {
        float[] policy = [-1.5f, -0.25f, -3f];
        float[] reference = [-1f, -0.75f, -2f];
        var (credits, q, reward) = CreditMath.Compute(policy, reference, 0.5);
        Assert.Equal([-0.25f, 0.25f, -0.5f], credits);
        Assert.Equal([-0.25f, 0f, -0.5f], q);
        Assert.Equal(-0.5, reward, 12);
    }

    [Fact]
    public void Reward_IsAccumulatedInDouble()
    {
        // 100000 tiny credits: a float accumulator drifts, the double one does not.
        var policy = Enumerable.Repeat(-1.0001f, 100_000).ToArray();
        var reference = Enumerable.Repeat(-1f, 100_000).ToArray();
        var (credits, _, reward) = CreditMath.Compute(policy, reference, 1);
        double exact = credits.Sum(c => (double)c);
        Assert.Equal(exact, reward, 9);
    }

    [Fact]
    public void MismatchedLengths_AreABug()
    {
        Assert.Throws<ArgumentException>(() => CreditMath.Compute([1f], [1f, 2f], 0.1));
    }
}
