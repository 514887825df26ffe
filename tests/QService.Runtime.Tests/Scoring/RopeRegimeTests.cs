using System.Text.Json;
using QService.Runtime.Models;
using QService.Runtime.Scoring;
using static QService.Runtime.Tests.Models.HfParityTests;

namespace QService.Runtime.Tests.Scoring;

/// <summary>
/// RoPE that depends on the pass length, on the phi3-longrope fixture (original_max_position_embeddings 32: short factors up to 32
/// tokens, long ones for every position past it; HF's numbers, generate() across the switch included) and a random dynamic-NTK Llama.
/// </summary>
public class RopeRegimeTests
{
    const int BlockSize = 4, Original = 32;

    static CausalLanguageModel Phi3() => CausalLanguageModel.Load(Fixture("phi3-longrope"), new ModelLoadOptions("cpu"));

    static float[] Fresh(CausalLanguageModel model, int[] tokens)
    {
        var logits = model.ScoreTokens([tokens], [tokens.Length], includeLastLogits: true)[0].LastLogits!;
        double max = logits.Max(), lse = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        return [.. logits.Select(l => (float)(l - lse))];
    }

    [Fact]
    public void TheRegime_SwitchesWhereHfSwitchesTheFactors_AndDynamicScalingPastTheContext()
    {
        using var model = Phi3();
        Assert.Equal(Original, model.Config.RopeScaling!.OriginalMaxPositionEmbeddings);
        Assert.Equal([0, 0, 1, 1], new[] { 1, Original, Original + 1, 128 }.Select(model.Config.RopeRegime));
        var dynamic = DynamicLlama() with { RopeScaling = new RopeScaling("dynamic", 2) };
        Assert.Equal([0, 0, 33, 40], new[] { 1, 32, 33, 40 }.Select(dynamic.RopeRegime));
        Assert.Equal(0, (dynamic with { RopeScaling = null }).RopeRegime(40));
    }

    [Fact]
    public void APrefixCachedUnderTheShortFactors_IsWrongPastTheSwitch_OneTurnedForTheLongerLengthEqualsAFreshPass()
    {
        using var model = Phi3();
        var seq = ScoringTests.Inputs("phi3-longrope")[1];
        Assert.True(seq.Length > Original);
        var fresh = model.ScoreTokens([seq], [1])[0].Logprobs;
        float[] Continued(int ropeLength, out float[] prefix)
        {
            var made = model.Extend([new PassInput(seq[..16], 1, NewBlockSize: BlockSize, RopeLength: ropeLength)])[0];
            prefix = made.Logprobs;
            try
            {
                return model.Extend([new PassInput(seq, 16, made.NewBlocks, PastLength: 15, CachedLength: 16)])[0].Logprobs;
            }
            finally
            {
                foreach (var block in made.NewBlocks) block.Dispose();
            }
        }
        var wrong = Continued(ropeLength: 0, out _); // the prefix as its own 16-token pass: short factors
        Assert.True(wrong.Zip(fresh[15..]).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "short-factor keys must not pass for long ones");
        var right = Continued(ropeLength: seq.Length, out var prefixLogprobs);
        AssertClose(fresh[15..], right, 1e-5, "continuing a prefix turned as the whole sequence");
        AssertClose(fresh[..15], prefixLogprobs, 1e-5, "the prefix's own log-probabilities, as its blocks store them");
    }

    [Fact]
    public void DecodingAcrossTheSwitch_RecomputesThere_SoEveryStepIsHfGeneratesAndAFreshPass()
    {
        using var model = Phi3();
        var root = JsonDocument.Parse(File.ReadAllText(Fixture("phi3-longrope", "expected.json"))).RootElement;
        var prompt = ScoringTests.Inputs("phi3-longrope")[0];
        var generate = root.GetProperty("generate");
        int[] tokens = [.. generate.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];
        double[] steps = [.. generate.GetProperty("step_logprobs").EnumerateArray().Select(t => t.GetDouble())];
        double[] final = [.. generate.GetProperty("final_logprobs").EnumerateArray().Select(t => t.GetDouble())];
        Assert.True(prompt.Length < Original && prompt.Length + tokens.Length > Original + 1);

        using var batch = new DecodeBatch(model);
        // Slot 1, four tokens shorter, crosses the switch four steps later, while slot 0 steps on the long factors.
        var started = batch.Add([new DecodeStart(new PassInput(prompt, prompt.Length), 1), new DecodeStart(new PassInput(prompt[..20], 20), 1)]);
        var sequences = new List<List<int>> { prompt.ToList(), prompt[..20].ToList() };
        var next = started.Select(s => s.NextLogprobs).ToArray();
        for (int step = 0; step < tokens.Length; step++)
        {
            Assert.Equal(tokens[step], Array.IndexOf(next[0].ToArray(), next[0].ToArray().Max())); // greedy, as generate()
            Assert.True(Math.Abs(next[0].Span[tokens[step]] - steps[step]) <= 1e-4, $"step {step}: ours {next[0].Span[tokens[step]]}, HF {steps[step]}");
            for (int s = 0; s < 2; s++) AssertClose(Fresh(model, [.. sequences[s]]), next[s].ToArray(), 1e-4, $"step {step}, slot {s}");
            int[] drawn = [tokens[step], tokens[step]];
            for (int s = 0; s < 2; s++) sequences[s].Add(drawn[s]);
            next = batch.Step(drawn);
        }
        // What Sample reports for such a sample: a fresh pass over the finished sequence, HF's numbers for it.
        var scored = model.ScoreTokens([[.. prompt, .. tokens]], [prompt.Length])[0].Logprobs;
        for (int t = 0; t < tokens.Length; t++) Assert.True(Math.Abs(scored[t] - final[t]) <= 1e-4, $"token {t}: ours {scored[t]}, HF {final[t]}");
    }

    static ModelConfig DynamicLlama() => new()
    {
        Architecture = "LlamaForCausalLM", ModelType = "llama", VocabSize = 64, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, HeadDim = 8, IntermediateSize = 48, MaxPositionEmbeddings = 32, RopeScaling = new RopeScaling("dynamic", 2),
    };

    [Fact]
    public void DynamicNtk_ServesOnlyTheRegimeOfTheContext_WhereCachedAndDecodedPassesEqualAFreshOne()
    {
        using var model = CausalLanguageModel.CreateRandom(DynamicLlama(), seed: 3, new ModelLoadOptions("cpu"));
        var random = new Random(11);
        int[] seq = [.. Enumerable.Range(0, 32).Select(_ => random.Next(64))];
        Assert.All(Enumerable.Range(1, 32), length => Assert.Equal(0, model.Config.RopeRegime(length)));
        Assert.Throws<ArgumentException>(() => model.ScoreNextTokens([[.. seq, 1]])); // past max_position_embeddings: refused
        var fresh = model.ScoreTokens([seq], [1])[0].Logprobs;
        var made = model.Extend([new PassInput(seq[..12], 1, NewBlockSize: BlockSize)])[0];
        var continued = model.Extend([new PassInput(seq, 12, made.NewBlocks, PastLength: 11, CachedLength: 12)])[0].Logprobs;
        AssertClose(fresh[11..], continued, 1e-5, "continuing cached blocks");
        foreach (var block in made.NewBlocks) block.Dispose();
        using var batch = new DecodeBatch(model);
        batch.Add([new DecodeStart(new PassInput(seq[..20], 20), 1)]);
        for (int t = 20; t < 31; t++)
        {
            var next = batch.Step([seq[t]])[0];
            AssertClose(Fresh(model, seq[..(t + 1)]), next.ToArray(), 1e-4, $"decoding, length {t + 1}");
        }
    }
}
