using QService.Runtime.Models;
using static TorchSharp.torch;

namespace QService.Runtime.Tests.Models;

/// <summary>
/// RoPE scaling types without HF reference checkpoints in the fixtures (dynamic, llama3) checked against the
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
}
