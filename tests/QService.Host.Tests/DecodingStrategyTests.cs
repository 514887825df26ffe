using QService.Client.Decoding;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>The client's decoding strategies against the real server on the demo pair, with fixed seeds.</summary>
[Collection(nameof(DefaultServerCollection))]
public class DecodingStrategyTests(DefaultServer fixture)
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;
    const string Prompt = "Review of the phone:";

    /// <summary>Score's credits for the whole response: what a strategy's credits must be.</summary>
    async Task<float[]> ScoredCredits(int[] response)
    {
        var item = new ScoreItem { Prompt = Prompt };
        item.ResponseTokenIds.Add(response);
        return [.. (await _scorer.ScoreAsync(new ScoreRequest { Items = { item } })).Results[0].Credits];
    }

    static void AssertClose(float[] expected, float[] actual, float tolerance = 1e-4f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], tolerance);
    }

    [Fact]
    public async Task BestOfN_ReturnsTheArgmaxOfItsCandidatesRewards()
    {
        var sampler = new ServiceSampler(_scorer, new SamplingSettings(SampleFrom.Reference));
        var result = await new BestOfN(sampler, n: 8, maxTokens: 40).DecodeAsync(Prompt, seed: 3);
        Assert.Equal(7, result.Rejected.Count);
        Assert.All(result.Rejected, c => Assert.True(result.Reward >= c.Q));
        Assert.Contains(result.Rejected, c => c.Q < result.Reward); // not all equal: the choice mattered
        AssertClose(await ScoredCredits(result.TokenIds), result.Credits);
        Assert.Equal(result.Credits.Sum(c => (double)c), result.Reward, 1e-4);
        Assert.True(result.ForwardTokens >= result.TokenIds.Length + result.Rejected.Sum(c => c.TokenIds.Length));
    }

    [Fact]
    public async Task ChunkBeamSearch_KeepsTheTopWByQ_AtEveryRound()
    {
        var sampler = new ServiceSampler(_scorer, new SamplingSettings(SampleFrom.Reference));
        var result = await new ChunkBeamSearch(sampler, width: 2, expansions: 3, chunkTokens: 6, maxTokens: 30).DecodeAsync(Prompt, seed: 5);
        Assert.True(result.Rounds.Count >= 2);
        foreach (var round in result.Rounds)
        {
            var byQ = round.Candidates.Select(c => c.Q).OrderDescending().ToList();
            Assert.Equal(Math.Min(2, round.Candidates.Count), round.Kept.Count);
            Assert.Equal(byQ.Take(round.Kept.Count), round.Kept.Select(i => round.Candidates[i].Q));
            Assert.All(round.Candidates, c => Assert.Equal(c.Credits.Sum(x => (double)x), c.Q, 1e-4));
        }
        // The next round grows exactly the kept beams.
        for (int r = 1; r < result.Rounds.Count; r++)
        {
            var kept = result.Rounds[r - 1].Kept.Select(i => result.Rounds[r - 1].Candidates[i]).ToList();
            Assert.All(result.Rounds[r].Candidates, c => Assert.Contains(kept, k => c.TokenIds.Take(k.TokenIds.Length).SequenceEqual(k.TokenIds)));
        }
        // Credits gathered chunk by chunk equal Score on the whole response.
        AssertClose(await ScoredCredits(result.TokenIds), result.Credits);
        Assert.True(result.TokenIds.Length <= 30);
    }

    [Fact]
    public async Task AnExternalGenerator_IsScoredByTheService_AndRankedLikeAnyOther()
    {
        // A fake generator: fixed phrases as token ids of the pair's tokenizer.
        using var tokenizer = Runtime.Tokenization.HfTokenizer.Load(Fixtures.DemoPair("policy"));
        string[] phrases = [" The battery is great.", " The battery is terrible.", " The screen is fine."];
        int calls = 0;
        var generator = new ExternalGenerator(_scorer, (prompt, response, n, maxNew, seed, _) =>
        {
            Interlocked.Increment(ref calls);
            Assert.Equal(Prompt, prompt);
            IReadOnlyList<Proposal> proposals = [.. phrases.Take(n).Select(p => new Proposal(tokenizer.Encode(p, addSpecialTokens: false).Ids, p,
                Ended: true))];
            return Task.FromResult(proposals);
        });
        var result = await new BestOfN(generator, n: 3, maxTokens: 20).DecodeAsync(Prompt, seed: 1);
        Assert.Equal(1, calls);
        var rewards = new List<double>();
        foreach (var p in phrases) rewards.Add((await ScoredCredits(tokenizer.Encode(p, addSpecialTokens: false).Ids)).Sum(c => (double)c));
        Assert.Equal(phrases[rewards.IndexOf(rewards.Max())], result.Text);
        Assert.Equal(rewards.Max(), result.Reward, 1e-4);
    }

    [Fact]
    public async Task GuidedSampling_IsOneServiceSampleWithAlpha()
    {
        var sampler = new ServiceSampler(_scorer, new SamplingSettings(SampleFrom.Guided, Alpha: 4));
        var result = await new SingleSample(sampler, maxTokens: 40, name: "guided").DecodeAsync(Prompt, seed: 8);
        AssertClose(await ScoredCredits(result.TokenIds), result.Credits);
        var again = await new SingleSample(sampler, maxTokens: 40, name: "guided").DecodeAsync(Prompt, seed: 8);
        Assert.Equal(result.TokenIds, again.TokenIds);
    }
}
