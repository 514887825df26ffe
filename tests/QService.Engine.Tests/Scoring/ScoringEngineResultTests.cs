using QService.Engine.Backends;
using QService.Engine.Sampling;
using QService.Engine.Tests.Batching;
using static QService.Engine.Tests.Scoring.FakeEngine;

namespace QService.Engine.Tests.Scoring;

/// <summary>How the engine assembles results from the two models' numbers, on the fake backend.</summary>
public class ScoringEngineResultTests
{
    /// <summary>Log-probabilities whose differences are not exact in float, so that the double arithmetic shows.</summary>
    static FakeBackend Uneven() => new() { Vocab = Vocab, LogProb = (role, token) => role == ModelRole.Policy ? -0.1f * token : -0.3f * token - 0.7f };

    [Fact]
    public async Task Score_CreditsAreBetaTimesTheLogRatio_QTheRunningSum_RewardTheSumInDouble()
    {
        var backend = Uneven();
        using var engine = await StartAsync(backend);
        const double beta = 0.37;
        var scores = (await engine.ScoreAsync([Ids([1, 2], [3, 4, 5, 6], "a")], new ScoreOptions(Beta: beta), default))[0];

        Assert.Equal("a", scores.Id);
        Assert.Equal(2, scores.PromptTokens);
        Assert.Equal([3, 4, 5, 6], scores.TokenIds);
        double running = 0;
        for (int t = 0; t < 4; t++)
        {
            float policy = backend.LogProb(ModelRole.Policy, 3 + t), reference = backend.LogProb(ModelRole.Reference, 3 + t);
            Assert.Equal(policy, scores.PolicyLogprobs[t]);
            Assert.Equal(reference, scores.ReferenceLogprobs[t]);
            double credit = beta * ((double)policy - reference);
            running += credit;
            Assert.Equal((float)credit, scores.Credits[t]);
            Assert.Equal((float)running, scores.QValues[t]);
        }
        Assert.Equal(running, scores.Reward);
        Assert.Null(scores.Steps);
    }

    [Fact]
    public async Task Score_WithoutBeta_UsesTheServedDefault_AndAppendEosScoresTheEosToken()
    {
        using var engine = await StartAsync();
        var scores = (await engine.ScoreAsync([Ids([1], [3]) with { AppendEos = true }], new ScoreOptions(), default))[0];
        Assert.Equal([3, Eos], scores.TokenIds);
        Assert.Equal((float)(Models.DefaultBeta * (3 - -3.0)), scores.Credits[0]);
    }

    [Fact]
    public async Task StepRewards_SumToTheReward_AndStepsEndAtTheDelimiter()
    {
        using var tokenizer = DemoTokenizer();
        using var engine = await StartAsync(new FakeBackend { Vocab = tokenizer.VocabSize, LogProb = Uneven().LogProb }, WithTokenizer(tokenizer));
        var item = new ScoreItemInput { Prompt = "Review of the phone:", Response = " The battery is good.\n The screen is dim.\n Fine" };
        var scores = (await engine.ScoreAsync([item], new ScoreOptions(Beta: 0.3, IncludeTokenText: true, StepDelimiter: "\n"), default))[0];

        var steps = Assert.IsType<StepScores>(scores.Steps);
        Assert.Equal(3, steps.Ends.Length);
        Assert.Equal(scores.TokenIds.Length - 1, steps.Ends[^1]);
        Assert.All(steps.Ends[..^1], end => Assert.EndsWith("\n", scores.Tokens![end].Text));
        Assert.Equal(scores.Reward, steps.Rewards.Sum(), 1e-12);
        Assert.Equal(scores.Credits[..(steps.Ends[0] + 1)].Sum(c => (double)c), steps.Rewards[0], 1e-5);
    }

    [Fact]
    public async Task NonFiniteLogProbabilities_AreInternal_NotTheCallersFault()
    {
        var backend = FakeEngine.Backend();
        backend.LogProb = (role, token) => token == 9 && role == ModelRole.Reference ? float.NegativeInfinity : token;
        using var engine = await StartAsync(backend);
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.ScoreAsync([Ids([1], [3]), Ids([1], [4, 9], "inf")], new(), default));
        Assert.Equal(ScoringErrorKind.Internal, error.Kind);
        Assert.Contains("item 'inf': the models produced a non-finite log-probability", error.Message);
    }

    [Fact]
    public async Task NonFiniteNextTokenLogProbabilities_AreInternal()
    {
        var backend = FakeEngine.Backend();
        backend.NextLogits = (role, tokens) => [.. FakeDecodeBatch.Next(role, tokens, Vocab).Select((l, v) => v == 7 ? float.NaN : l)];
        using var engine = await StartAsync(backend);
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.NextTokensAsync([Ids([1], [3])], new(1, null), default));
        Assert.Equal(ScoringErrorKind.Internal, error.Kind);
        Assert.Contains("non-finite next-token log-probability", error.Message);
    }

    [Theory]
    [InlineData(RankBy.Policy)]
    [InlineData(RankBy.Reference)]
    [InlineData(RankBy.Credit)]
    public async Task NextTokens_TopK_IsTheBestKByRankBy_WithQThePartialResponsesReward(RankBy rankBy)
    {
        using var engine = await StartAsync();
        const double beta = 0.2;
        int[] prompt = [1, 2], partial = [3, 4];
        var choices = (await engine.NextTokensAsync([Ids(prompt, partial)], new(5, null, rankBy, beta), default))[0];

        int[] sequence = [.. prompt, .. partial];
        float[] policy = FakeDecodeBatch.Next(ModelRole.Policy, sequence, Vocab), reference = FakeDecodeBatch.Next(ModelRole.Reference, sequence, Vocab);
        Func<int, double> key = rankBy switch
        {
            RankBy.Reference => id => reference[id],
            RankBy.Credit => id => beta * ((double)policy[id] - reference[id]),
            _ => id => policy[id],
        };
        Assert.Equal(Enumerable.Range(0, Vocab).OrderByDescending(key).ThenBy(id => id).Take(5), choices.Candidates.Select(c => c.Id));
        foreach (var c in choices.Candidates)
        {
            Assert.Equal(policy[c.Id], c.PolicyLogprob, 1e-5f);
            Assert.Equal(reference[c.Id], c.ReferenceLogprob, 1e-5f);
            Assert.Equal((float)(beta * ((double)c.PolicyLogprob - c.ReferenceLogprob)), c.Credit);
            Assert.Equal("", c.Text); // no tokenizer
        }
        Assert.Equal((2, 2), (choices.PromptTokens, choices.ResponseTokens));
        var scored = (await engine.ScoreAsync([Ids(prompt, partial)], new ScoreOptions(Beta: beta), default))[0];
        Assert.Equal(scored.Reward, choices.Q);
    }

    [Fact]
    public async Task NextTokens_CandidateIds_ComeBackInTheOrderAsked_AndAnEmptyPartialResponseHasQZero()
    {
        using var engine = await StartAsync();
        var choices = (await engine.NextTokensAsync([new ScoreItemInput { PromptTokenIds = [1, 2] }], new(0, [200, 7, 150]), default))[0];
        Assert.Equal([200, 7, 150], choices.Candidates.Select(c => c.Id));
        Assert.Equal(0, choices.ResponseTokens);
        Assert.Equal(0.0, choices.Q);
    }

    [Fact]
    public async Task ASamplesNumbers_AreAssembledAsScoreAssemblesThem()
    {
        using var engine = await StartAsync();
        var result = await engine.SampleAsync(new ScoreItemInput { PromptTokenIds = [1, 2, 3] },
            new SampleOptions { N = 3, MaxNewTokens = 5, Seed = 9, Beta = 0.4 }, default);
        Assert.Equal((9UL, 3, 0.4), (result.Seed, result.PrefixTokens, result.Beta));
        Assert.Equal(3, result.Samples.Count);
        foreach (var sample in result.Samples)
        {
            var s = sample.Scores;
            Assert.Equal(3, s.PromptTokens);
            var (credits, q, reward) = CreditMath.Compute(s.PolicyLogprobs, s.ReferenceLogprobs, 0.4);
            Assert.Equal(credits, s.Credits);
            Assert.Equal(q, s.QValues);
            Assert.Equal(reward, s.Reward);
            Assert.Equal(s.Credits.Sum(c => (double)c), s.Reward, 1e-5);
        }
    }
}
