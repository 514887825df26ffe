using QService.Runtime.Adapters;
using QService.Runtime.Scoring;
using Xunit.Abstractions;
using static QService.Runtime.Tests.Adapters.LoraFixtures;

namespace QService.Runtime.Tests.Adapters;

/// <summary>
/// A PEFT adapter over its base against PEFT 0.18.1's numbers: the policy (adapter on) and the reference (the same module,
/// adapter off) alternate on every pass, so a switch that leaked into the other model's forward would show.
/// </summary>
public class LoraParityTests(ITestOutputHelper output)
{
    const double Tolerance = 1e-4;

    public static TheoryData<string> CaseNames => Cases();

    [Fact]
    public void TheKnownCases_AreInTheFixtureFolder()
    {
        var found = CaseList();
        foreach (var name in Known) Assert.Contains(name, found);
    }

    static double Compare(double[] expected, float[] ours, string what, int skip = 0)
    {
        Assert.Equal(expected.Length - skip, ours.Length);
        double max = 0;
        for (int t = 0; t < ours.Length; t++)
        {
            double delta = Math.Abs(ours[t] - expected[t + skip]);
            Assert.True(delta <= Tolerance, $"{what} position {t + skip}: ours {ours[t]} vs PEFT {expected[t + skip]}");
            max = Math.Max(max, delta);
        }
        return max;
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void AdapterModules_AreThoseAndScaledAsPeftMadeThem(string name)
    {
        using var models = new Loaded(name);
        var adapter = models.Policy.Adapter!;
        Assert.Equal(models.Expected.lora_modules.Keys.Order(StringComparer.Ordinal), adapter.Modules.Order(StringComparer.Ordinal));
        var rules = new LoraTargets(LoraAdapterConfig.Load(Adapter(name)));
        foreach (var (module, expected) in models.Expected.lora_modules)
        {
            Assert.Equal((expected.r, expected.lora_alpha), rules.RankAndAlpha(module));
            Assert.Equal(expected.scaling, rules.Scaling(module), 12);
        }
        Assert.Equal(models.Expected.base_architecture, models.Reference.Config.Architecture);
        Assert.Null(models.Reference.Adapter);
        output.WriteLine(adapter.Describe());
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void PolicyAndReference_MatchPeft_AloneAndBatched(string name)
    {
        using var models = new Loaded(name);
        var (e, max) = (models.Expected, 0.0);
        for (int s = 0; s < e.input_ids.Length; s++)
        {
            max = Math.Max(max, Compare(e.reference_next_token_logprobs[s], models.Reference.ScoreNextTokens([e.input_ids[s]])[0].Logprobs, $"reference {s}"));
            max = Math.Max(max, Compare(e.policy_next_token_logprobs[s], models.Policy.ScoreNextTokens([e.input_ids[s]])[0].Logprobs, $"policy {s}"));
        }
        // One right-padded pass over sequences of three lengths, policy first this time.
        var policy = models.Policy.ScoreNextTokens(e.input_ids);
        var reference = models.Reference.ScoreNextTokens(e.input_ids);
        for (int s = 0; s < e.input_ids.Length; s++)
        {
            max = Math.Max(max, Compare(e.policy_next_token_logprobs[s], policy[s].Logprobs, $"batched policy {s}"));
            max = Math.Max(max, Compare(e.reference_next_token_logprobs[s], reference[s].Logprobs, $"batched reference {s}"));
        }
        output.WriteLine($"{name}: max |Δ logprob| = {max:E2}");
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void PairCredits_AndRewards_MatchPeft(string name)
    {
        using var models = new Loaded(name);
        double beta = models.Expected.beta;
        foreach (var pair in models.Expected.pairs)
        {
            int[] seq = [.. pair.prompt_ids, .. pair.response_ids];
            int first = pair.prompt_ids.Length;
            var policy = models.Policy.ScoreTokens([seq], [first])[0].Logprobs;
            var reference = models.Reference.ScoreTokens([seq], [first])[0].Logprobs;
            Compare(pair.policy_logprobs, policy, "pair policy");
            Compare(pair.reference_logprobs, reference, "pair reference");
            double q = 0;
            for (int j = 0; j < policy.Length; j++)
            {
                double credit = beta * ((double)policy[j] - reference[j]);
                q += credit;
                Assert.True(Math.Abs(credit - pair.credits[j]) <= 2e-5, $"credit {j}: {credit} vs {pair.credits[j]}");
                Assert.True(Math.Abs(q - pair.cumulative_q[j]) <= 2e-5 * (j + 1), $"Q {j}: {q} vs {pair.cumulative_q[j]}");
            }
            Assert.True(Math.Abs(q - pair.reward) <= 2e-5 * policy.Length, $"reward {q} vs {pair.reward}");
        }
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void CachedExtensions_MatchPeft_WithEachModelsOwnBlocks(string name)
    {
        using var models = new Loaded(name);
        var e = models.Expected;
        var seq = e.input_ids[^1];
        var cached = new Dictionary<CausalLanguageModel, List<ICachedBlock>> { [models.Policy] = [], [models.Reference] = [] };
        var pieces = new Dictionary<CausalLanguageModel, List<float>> { [models.Policy] = [], [models.Reference] = [] };
        int at = 0;
        try
        {
            foreach (int cut in new[] { 7, 8, 9, 20, seq.Length })
            {
                foreach (var model in new[] { models.Policy, models.Reference })
                {
                    // As the prefix cache asks: the last cached position recomputed, its output predicting the first new token.
                    var pass = model.Extend([new PassInput(seq[..cut], FirstTarget: Math.Max(1, at), cached[model], PastLength: Math.Max(0, at - 1),
                        CachedLength: at, NewBlockSize: 1)])[0];
                    pieces[model].AddRange(pass.Logprobs);
                    cached[model].AddRange(pass.NewBlocks);
                }
                at = cut;
            }
            Compare(e.policy_next_token_logprobs[^1], [.. pieces[models.Policy]], "policy extended");
            Compare(e.reference_next_token_logprobs[^1], [.. pieces[models.Reference]], "reference extended");
        }
        finally
        {
            foreach (var block in cached.Values.SelectMany(b => b)) block.Dispose();
        }
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void ExtensionsBatchedWithOtherPasts_MatchPeft(string name)
    {
        using var models = new Loaded(name);
        var e = models.Expected;
        int[] cachedLengths = [8, 12, 0];
        foreach (var (model, expected) in new[] { (models.Policy, e.policy_next_token_logprobs), (models.Reference, e.reference_next_token_logprobs) })
        {
            var blocks = e.input_ids.Select((s, b) => cachedLengths[b] == 0 ? []
                : model.Extend([new PassInput(s[..cachedLengths[b]], FirstTarget: 1, NewBlockSize: 4)])[0].NewBlocks).ToArray();
            try
            {
                var inputs = e.input_ids.Select((s, b) => new PassInput(s, Math.Max(1, cachedLengths[b]), blocks[b],
                    PastLength: Math.Max(0, cachedLengths[b] - 1), CachedLength: cachedLengths[b])).ToArray();
                var results = model.Extend(inputs);
                for (int b = 0; b < inputs.Length; b++)
                    Compare(expected[b], results[b].Logprobs, $"{model.Name} sequence {b} after {cachedLengths[b]} cached", skip: inputs[b].FirstTarget - 1);
            }
            finally
            {
                foreach (var block in blocks.SelectMany(b => b)) block.Dispose();
            }
        }
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void DecodingSteps_MatchPeft(string name)
    {
        using var models = new Loaded(name);
        var e = models.Expected;
        var (a, b) = (e.input_ids[0], e.input_ids[2]);
        int[] lengths = [5, 11];
        using var policy = new DecodeBatch(models.Policy);
        using var reference = new DecodeBatch(models.Reference);
        var batches = new[] { (policy, e.policy_next_token_logprobs), (reference, e.reference_next_token_logprobs) };
        void Check(ReadOnlyMemory<float>[] next, double[][] expected, string what)
        {
            foreach (var (row, s) in new[] { (0, 0), (1, 2) })
            {
                int length = lengths[row], token = e.input_ids[s][length];
                double delta = Math.Abs(next[row].Span[token] - expected[s][length - 1]);
                Assert.True(delta <= Tolerance, $"{what}: sequence {s} after {length} tokens: {next[row].Span[token]} vs PEFT {expected[s][length - 1]}");
            }
        }
        foreach (var (batch, expected) in batches)
        {
            var added = batch.Add([new DecodeStart(new PassInput(a[..lengths[0]], lengths[0]), 1),
                new DecodeStart(new PassInput(b[..lengths[1]], lengths[1]), 1)]);
            Check([.. added.Select(x => x.NextLogprobs)], expected, "prompt");
        }
        while (lengths[0] + 1 < a.Length)
        {
            int[] tokens = [a[lengths[0]], b[lengths[1]]];
            var next = batches.Select(x => x.Item1.Step(tokens)).ToArray(); // policy, then reference, on the shared module
            (lengths[0], lengths[1]) = (lengths[0] + 1, lengths[1] + 1);
            for (int m = 0; m < batches.Length; m++) Check(next[m], batches[m].Item2, $"{(m == 0 ? "policy" : "reference")} step");
        }
    }
}
