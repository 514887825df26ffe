namespace QService.Engine.Tests;

public class StepSplitterTests
{
    // "A. B. C" as tokens "A", ".", " B", ".", " C": ends at code points 1, 2, 4, 5, 7.
    static readonly int[] Ends = [1, 2, 4, 5, 7];

    [Fact]
    public void EachDelimiterEndsAStep_AndTheLastStepEndsAtTheLastToken() =>
        Assert.Equal([1, 3, 4], StepSplitter.StepEnds("A. B. C", Ends, "."));

    [Fact]
    public void ADelimiterInsideATokenEndsTheStepAtThatToken() =>
        // ". " spans token "." and the space at the start of " B": its last character (the space) is in " B".
        Assert.Equal([2, 4], StepSplitter.StepEnds("A. B. C", Ends, ". "));

    [Fact]
    public void NoDelimiter_IsOneStep() => Assert.Equal([4], StepSplitter.StepEnds("A. B. C", Ends, "\n"));

    [Fact]
    public void ATrailingDelimiterEndsTheLastStepOnce() => Assert.Equal([1, 3], StepSplitter.StepEnds("A. B.", [1, 2, 4, 5], "."));

    [Fact]
    public void AnAppendedEosJoinsTheLastStep() => Assert.Equal([1, 4], StepSplitter.StepEnds("A. B.", [1, 2, 4, 5, -1], "."));

    [Fact]
    public void OffsetsAreCodePoints() =>
        // "😀\nx": the emoji is one code point (two UTF-16 units); tokens "😀", "\n", "x".
        Assert.Equal([1, 2], StepSplitter.StepEnds("😀\nx", [1, 2, 3], "\n"));

    [Fact]
    public void StepRewards_SumTheStepsCredits_AndAddUpToTheReward()
    {
        float[] policy = [-1.5f, -0.25f, -3.125f, -0.5f, -7f], reference = [-2f, -0.5f, -3f, -1.25f, -5f];
        var rewards = CreditMath.StepRewards(policy, reference, 0.5, [1, 3, 4]);
        Assert.Equal([0.375, 0.3125, -1.0], rewards);
        var (_, _, reward) = CreditMath.Compute(policy, reference, 0.5);
        Assert.Equal(reward, rewards.Sum(), 12);
    }
}
