namespace QService.Demo.Tests;

public class ReviewLanguageTests
{
    [Theory]
    [InlineData(" The battery is great.", 1)]
    [InlineData(" The battery is awful. The screen is okay.", -1)]
    [InlineData(" The battery is long.", 1)]
    [InlineData(" The delivery is long.", -1)]
    [InlineData(" The price is cheap. The build is cheap.", 0)]
    [InlineData(" The speaker is loud. The fan is loud. The screen is reliable.", 1)]
    [InlineData(" The wait is short. The battery is short.", 0)]
    [InlineData(" The screen is long.", 0)]
    [InlineData(" gibberish without clauses", 0)]
    public void Reward_CountsClauseSentiment_WithContext(string response, int expected) =>
        Assert.Equal(expected, ReviewLanguage.Reward(response));

    [Fact]
    public void SamplePair_HasSamePromptAndOrderedRewards()
    {
        var rng = new Random(3);
        for (int i = 0; i < 200; i++)
        {
            var (better, worse) = ReviewLanguage.SamplePair(rng);
            Assert.Equal(better.Prompt, worse.Prompt);
            Assert.True(ReviewLanguage.Reward(better.Response) > ReviewLanguage.Reward(worse.Response));
        }
    }
}
