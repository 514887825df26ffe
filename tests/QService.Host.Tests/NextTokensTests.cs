using Grpc.Core;
using QService.Protos.V1;
using QService.Runtime.Tokenization;

namespace QService.Host.Tests;

/// <summary>NextTokens over real sockets on the bundled demo pair: candidates against Score, ranking, bad input.</summary>
[Collection(nameof(DefaultServerCollection))]
public class NextTokensTests(DefaultServer fixture)
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;
    const string Prompt = "Review of the phone:";
    const string Partial = " The battery is";

    static ScoreItem Text(string response = Partial, string id = "x") => new() { Id = id, Prompt = Prompt, Response = response };

    [Fact]
    public async Task Candidates_EqualScoreOnPrefixPlusCandidate_AndQIsThePartialResponsesReward()
    {
        var reply = await _scorer.NextTokensAsync(new NextTokensRequest { Items = { Text() }, TopK = 6 });
        var choices = reply.Results[0];
        Assert.Equal(6, choices.Candidates.Count);

        using var tokenizer = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        int[] prompt = tokenizer.Encode(Prompt, addSpecialTokens: true).Ids, partial = tokenizer.Encode(Partial, addSpecialTokens: false).Ids;
        Assert.Equal(prompt.Length, choices.PromptTokens);
        Assert.Equal(partial.Length, choices.ResponseTokens);
        var scored = await _scorer.ScoreAsync(new ScoreRequest
        {
            Items =
            {
                new ScoreItem { Id = "partial", PromptTokenIds = { prompt }, ResponseTokenIds = { partial } },
                choices.Candidates.Select(c => new ScoreItem { Id = $"{c.Id}", PromptTokenIds = { prompt }, ResponseTokenIds = { partial.Append(c.Id) } }),
            },
        });
        Assert.Equal(scored.Results[0].Reward, choices.Q, 5);
        for (int i = 0; i < choices.Candidates.Count; i++)
        {
            var c = choices.Candidates[i];
            var s = scored.Results[i + 1];
            Assert.Equal(s.PolicyLogprobs[^1], c.PolicyLogprob, 1e-5f);
            Assert.Equal(s.ReferenceLogprobs[^1], c.ReferenceLogprob, 1e-5f);
            Assert.Equal(s.Credits[^1], c.Credit, 1e-5f);
            Assert.Equal(tokenizer.TokenSurface(c.Id), c.Text);
        }
    }

    [Theory]
    [InlineData(RankBy.Policy)]
    [InlineData(RankBy.Reference)]
    [InlineData(RankBy.Credit)]
    public async Task TopK_IsTheBestKByRankBy_InOrder(RankBy rankBy)
    {
        var all = (await _scorer.NextTokensAsync(new NextTokensRequest { Items = { Text() }, TopK = 384, RankBy = rankBy })).Results[0].Candidates;
        var top = (await _scorer.NextTokensAsync(new NextTokensRequest { Items = { Text() }, TopK = 5, RankBy = rankBy })).Results[0].Candidates;
        Func<NextTokenCandidate, float> key = rankBy switch
        {
            RankBy.Reference => c => c.ReferenceLogprob,
            RankBy.Credit => c => c.Credit,
            _ => c => c.PolicyLogprob,
        };
        Assert.Equal(384, all.Count);
        Assert.Equal(all.Select(key).OrderDescending(), all.Select(key));
        Assert.Equal(all.Take(5).Select(c => c.Id), top.Select(c => c.Id));
        // A full distribution: the policy's probabilities sum to 1.
        Assert.Equal(1.0, all.Sum(c => Math.Exp(c.PolicyLogprob)), 4);
    }

    [Fact]
    public async Task CandidateIds_ComeBackInTheOrderAsked()
    {
        var reply = await _scorer.NextTokensAsync(new NextTokensRequest { Items = { Text() }, CandidateIds = { 200, 7, 150 } });
        Assert.Equal([200, 7, 150], reply.Results[0].Candidates.Select(c => c.Id));
    }

    [Fact]
    public async Task AnEmptyPartialResponse_HasQZero_AndCandidatesForTheFirstToken()
    {
        var reply = await _scorer.NextTokensAsync(new NextTokensRequest { Items = { Text(response: "") }, TopK = 3 });
        Assert.Equal(0, reply.Results[0].ResponseTokens);
        Assert.Equal(0.0, reply.Results[0].Q);
        Assert.Equal(3, reply.Results[0].Candidates.Count);
    }

    /// <summary>
    /// Every bad input is unit-tested on the engine (Engine.Tests: ScoringEngineValidationTests); this one checks the
    /// status over a real socket.
    /// </summary>
    [Fact]
    public async Task BadInput_IsInvalidArgumentNamingTheField()
    {
        var request = new NextTokensRequest { Items = { Text() }, CandidateIds = { 1, 384 } };
        var error = await Assert.ThrowsAsync<RpcException>(async () => await _scorer.NextTokensAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("candidate_ids[1] is 384, outside the vocabulary [0, 384)", error.Status.Detail);
        // The service keeps serving.
        Assert.Single((await _scorer.NextTokensAsync(new NextTokensRequest { Items = { Text() }, TopK = 1 })).Results);
    }
}
