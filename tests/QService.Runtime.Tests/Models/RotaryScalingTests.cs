using QService.Runtime.Models;
using static TorchSharp.torch;

namespace QService.Runtime.Tests.Models;

/// <summary>
/// RoPE scaling types without HF reference checkpoints in the fixtures (dynamic, llama3, longrope) checked against the
/// formulas of transformers' modeling_rope_utils, computed here in double. Linear scaling is covered by the
/// llama-tied-rope-linear parity test.
/// </summary>
public class RotaryScalingTests
{
    const int HeadDim = 16, MaxPositions = 32;
    const double Theta = 10000;

    static ModelConfig Config(RopeScaling? scaling) => new()
    {
        Architecture = "LlamaForCausalLM", ModelType = "llama", VocabSize = 10, HiddenSize = 64, NumHiddenLayers = 1,
        NumAttentionHeads = 4, NumKeyValueHeads = 4, HeadDim = HeadDim, IntermediateSize = 8, MaxPositionEmbeddings = MaxPositions,
        RopeTheta = Theta, RopeScaling = scaling,
    };

    static double[] DefaultInvFreq(double theta) =>
        Enumerable.Range(0, HeadDim / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / HeadDim)).ToArray();

    static void AssertAngles(RopeScaling? scaling, long length, double[] invFreq)
    {
        var (cos, sin) = new RotaryEmbedding(Config(scaling), CPU).Compute(0, length, ScalarType.Float32);
        using (cos) using (sin)
        {
            var c = cos.data<float>().ToArray();
            var s = sin.data<float>().ToArray();
            for (int p = 0; p < length; p++)
                for (int i = 0; i < HeadDim; i++)
                {
                    double angle = p * invFreq[i % (HeadDim / 2)];
                    Assert.True(Math.Abs(c[p * HeadDim + i] - Math.Cos(angle)) < 2e-4, $"cos at position {p}, dim {i}");
                    Assert.True(Math.Abs(s[p * HeadDim + i] - Math.Sin(angle)) < 2e-4, $"sin at position {p}, dim {i}");
                }
        }
    }

    [Fact]
    public void Default_MatchesTheFormula() => AssertAngles(null, 20, DefaultInvFreq(Theta));

    [Fact]
    public void Dynamic_WithinTheTrainedContext_ChangesNothing() =>
        AssertAngles(new RopeScaling("dynamic", 2.0), MaxPositions, DefaultInvFreq(Theta));

    [Fact]
    public void Dynamic_BeyondTheTrainedContext_RaisesTheBase()
    {
        const int length = 48;
        double factor = 2.0;
        double theta = Theta * Math.Pow(factor * length / MaxPositions - (factor - 1), HeadDim / (HeadDim - 2.0));
        AssertAngles(new RopeScaling("dynamic", factor), length, DefaultInvFreq(theta));
    }

    [Fact]
    public void Llama3_ScalesLowFrequencies_KeepsHighOnes_AndBlendsBetween()
    {
        const int original = 64;
        var scaling = new RopeScaling("llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: original);
        double lowWavelen = original / 1.0, highWavelen = original / 4.0;
        var expected = DefaultInvFreq(Theta).Select(f =>
        {
            double wavelen = 2 * Math.PI / f;
            if (wavelen < highWavelen) return f;
            if (wavelen > lowWavelen) return f / 8;
            double smooth = (original / wavelen - 1) / (4 - 1);
            return (1 - smooth) * f / 8 + smooth * f;
        }).ToArray();
        // The three regimes all occur with these numbers.
        Assert.Contains(expected.Zip(DefaultInvFreq(Theta)), p => p.First == p.Second);
        Assert.Contains(expected.Zip(DefaultInvFreq(Theta)), p => Math.Abs(p.First - p.Second / 8) < 1e-15);
        Assert.Contains(expected.Zip(DefaultInvFreq(Theta)), p => p.First < p.Second && p.First > p.Second / 8);
        AssertAngles(scaling, 24, expected);
    }

    [Fact]
    public void Linear_DividesPositions() =>
        AssertAngles(new RopeScaling("linear", 4.0), 20, DefaultInvFreq(Theta).Select(f => f / 4).ToArray());

    [Theory]
    [InlineData(24, false)] // within original_max_position_embeddings: the short factors
    [InlineData(40, true)]  // a longer pass: the long factors, for every position
    public void LongRope_PicksTheFactorsByThePassLength_OnThePartialRotaryDims_ScaledByTheAttentionFactor(int length, bool useLong)
    {
        const int original = 32, max = 128, rotaryDim = HeadDim / 2;
        double[] shortFactor = [1, 1.5, 2, 3], longFactor = [2, 4, 8, 16];
        static string List(double[] xs) => string.Join(", ", xs.Select(x => x.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var json = System.Text.Json.Nodes.JsonNode.Parse($$$"""
            {"architectures": ["Phi3ForCausalLM"], "vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
             "intermediate_size": 8, "max_position_embeddings": {{{max}}}, "original_max_position_embeddings": {{{original}}},
             "partial_rotary_factor": 0.5, "rope_theta": {{{Theta}}},
             "rope_scaling": {"type": "longrope", "short_factor": [{{{List(shortFactor)}}}], "long_factor": [{{{List(longFactor)}}}]}}
            """)!.AsObject();
        var config = ModelConfig.Parse(json);
        // HF's _compute_longrope_parameters: attention_factor = sqrt(1 + ln(max / original) / ln(original)).
        double attention = Math.Sqrt(1 + Math.Log((double)max / original) / Math.Log(original));
        Assert.Equal(attention, config.RopeScaling!.AttentionFactor, 12);
        Assert.Equal(rotaryDim, config.RotaryDim);
        var factors = useLong ? longFactor : shortFactor;
        var invFreq = Enumerable.Range(0, rotaryDim / 2).Select(i => 1.0 / (factors[i] * Math.Pow(Theta, 2.0 * i / rotaryDim))).ToArray();
        var (cos, sin) = new RotaryEmbedding(config, CPU).Compute(0, length, ScalarType.Float32);
        using (cos) using (sin)
        {
            Assert.Equal([length, rotaryDim], cos.shape);
            var c = cos.data<float>().ToArray();
            var s = sin.data<float>().ToArray();
            for (int p = 0; p < length; p++)
                for (int i = 0; i < rotaryDim; i++)
                {
                    double angle = p * invFreq[i % (rotaryDim / 2)];
                    Assert.True(Math.Abs(c[p * rotaryDim + i] - attention * Math.Cos(angle)) < 2e-4, $"cos at position {p}, dim {i}");
                    Assert.True(Math.Abs(s[p * rotaryDim + i] - attention * Math.Sin(angle)) < 2e-4, $"sin at position {p}, dim {i}");
                }
        }
    }

    /// <summary>
    /// Two rows of <paramref name="lengths"/> positions (the shorter padded by repeating its last) in one pass: each row's angles equal
    /// those of its sequence alone (the second half of sin, whose sign rotate_half leaves). Returns the pass's angles.
    /// </summary>
    static RotaryAngles AssertEachRowAsAlone(RotaryEmbedding rotary, int[] lengths)
    {
        var angles = rotary.Angles(Positions.Continuing([0, 0], [.. lengths.Select(l => (long)l)], lengths.Max(), CPU),
            [.. lengths.Select(l => (long)l)], ScalarType.Float32);
        for (int row = 0; row < lengths.Length; row++)
        {
            var (cos, sin) = rotary.Compute(0, lengths[row], ScalarType.Float32);
            long half = sin.shape[^1] / 2;
            Assert.True(angles.Cos[row, 0].narrow(0, 0, lengths[row]).eq(cos).all().item<bool>(), $"cos of row {row}");
            Assert.True(angles.SignedSin[row, 0].narrow(0, 0, lengths[row]).narrow(-1, half, half).eq(sin.narrow(-1, half, half)).all().item<bool>(),
                $"sin of row {row}");
        }
        return angles;
    }

    [Fact]
    public void LongRope_ChoosesPerSequence_SoThatBatchingWithALongerOneChangesNothing()
    {
        var scaling = new RopeScaling("longrope", 4, OriginalMaxPositionEmbeddings: 32, ShortFactor: [1, 1.5, 2, 3], LongFactor: [2, 4, 8, 16],
            AttentionFactor: 1.2);
        using var rotary = new RotaryEmbedding(Config(scaling) with { PartialRotaryFactor = 0.5 }, CPU);
        using var scope = NewDisposeScope();
        // 24 positions under the short factors, 40 under the long ones, in one pass.
        var angles = AssertEachRowAsAlone(rotary, [24, 40]);
        Assert.False(angles.Cos[0, 0].narrow(0, 0, 24).eq(angles.Cos[1, 0].narrow(0, 0, 24)).all().item<bool>(), "the rows' factors differ");
    }

    [Fact]
    public void Dynamic_ChoosesPerSequence_SoThatBatchingWithALongerOneChangesNothing()
    {
        using var rotary = new RotaryEmbedding(Config(new RopeScaling("dynamic", 2.0)), CPU);
        using var scope = NewDisposeScope();
        // Row 0 within the trained context (plain RoPE), row 1 past it (a raised base of its own), in one pass.
        var angles = AssertEachRowAsAlone(rotary, [24, 48]);
        Assert.False(angles.Cos[0, 0].narrow(0, 0, 24).eq(angles.Cos[1, 0].narrow(0, 0, 24)).all().item<bool>(), "the rows' bases differ");
    }
}
