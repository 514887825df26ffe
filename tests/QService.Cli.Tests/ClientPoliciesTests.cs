using QService.Client;
using QService.Client.Decoding;
using QService.Protos.V1;

namespace QService.Cli.Tests;

/// <summary>
/// The C# client's policy knobs against the real two-policy server: the decoding sources sample and score under the policy
/// they name, and a several-policy response groups per item. "sft" is the reference served as a policy, so sampling from it
/// is sampling from the reference and its credits are 0.
/// </summary>
[Collection(nameof(TwoPolicyServerCollection))]
public class ClientPoliciesTests(TwoPolicyServer fixture)
{
    const string Prompt = "Review of the kettle:";
    QScorer.QScorerClient Scorer => fixture.Server.Channel.Scorer;

    [Fact]
    public async Task ServiceSampler_SamplesAndScoresUnderItsPolicy()
    {
        var fromSft = await new ServiceSampler(Scorer, new SamplingSettings(SampleFrom.Policy, Policy: "sft")).ContinueAsync(Prompt, [], 3, 12, 6);
        var fromReference = await new ServiceSampler(Scorer, new SamplingSettings(SampleFrom.Reference)).ContinueAsync(Prompt, [], 3, 12, 6);
        Assert.Equal(fromReference.Continuations.Select(c => c.TokenIds), fromSft.Continuations.Select(c => c.TokenIds));
        Assert.All(fromSft.Continuations, c => Assert.All(c.Credits, x => Assert.Equal(0f, x)));
        // Under the default policy (nca) the same draws from the reference have credits.
        Assert.Contains(fromReference.Continuations, c => c.Credits.Any(x => x != 0));
    }

    [Fact]
    public async Task ExternalGenerator_ScoresUnderItsPolicy()
    {
        var ids = (await Scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = Prompt, Response = " The fan is loud." } } }))
            .Results[0].TokenIds.ToArray();
        Task<IReadOnlyList<Proposal>> Propose(string p, IReadOnlyList<int> r, int n, int max, ulong seed, CancellationToken _) =>
            Task.FromResult<IReadOnlyList<Proposal>>([new Proposal(ids, " The fan is loud.", true)]);
        var underSft = await new ExternalGenerator(Scorer, Propose, policy: "sft").ContinueAsync(Prompt, [], 1, 8, 1);
        var underNca = await new ExternalGenerator(Scorer, Propose, policy: "nca").ContinueAsync(Prompt, [], 1, 8, 1);
        Assert.Equal(0, underSft.Continuations[0].Reward);
        var item = new ScoreItem { Prompt = Prompt, Response = " The fan is loud.", Policy = "nca" };
        var expected = (await Scorer.ScoreAsync(new ScoreRequest { Items = { item } })).Results[0].Credits;
        Assert.Equal(expected.Count, underNca.Continuations[0].Credits.Length);
        for (int t = 0; t < expected.Count; t++) Assert.Equal(expected[t], underNca.Continuations[0].Credits[t], 1e-5f);
        Assert.NotEqual(0, underNca.Continuations[0].Reward);
    }

    [Fact]
    public async Task ByItem_GroupsTheItemMajorResults_InTheRequestsPolicyOrder()
    {
        var request = new ScoreRequest { Policies = { "sft", "nca" } };
        request.Items.Add(new[] { " ok.", " The lid is stiff.", " fine" }.Select((r, i) => new ScoreItem { Id = $"r{i}", Prompt = Prompt, Response = r }));
        var response = await Scorer.ScoreAsync(request);
        var compared = response.ByItem(request.Policies.Count);
        Assert.Equal(["r0", "r1", "r2"], compared.Select(c => c.Id));
        Assert.All(compared, c => Assert.Equal(["sft", "nca"], c.Results.Select(r => r.Policy)));
        Assert.All(compared, c => Assert.Equal(c.Id, c["nca"].Id));
        Assert.Equal(["sft", "nca"], response.PolicyNames());
        Assert.Throws<ArgumentException>(() => response.ByItem(4));
        var info = await Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal(["nca", "sft"], info.Policies.Select(p => p.Name));
    }
}
