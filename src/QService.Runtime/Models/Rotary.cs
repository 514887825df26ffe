using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// Rotary position embeddings (RoPE) with HF's layout: the two halves of each head are rotated together
/// (rotate_half), not interleaved pairs. Frequencies and angles are computed in float32 whatever the
/// compute dtype (as HF forces), then cast.
/// </summary>
public sealed class RotaryEmbedding
{
    readonly ModelConfig _config;
    readonly Device _device;

    public RotaryEmbedding(ModelConfig config, Device device)
    {
        _config = config;
        _device = device;
    }

    /// <summary>cos and sin for positions [start, start + length), shaped [length, head_dim], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Compute(long start, long length, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = InverseFrequencies(start + length);
        var positions = arange(start, start + length, ScalarType.Int64, _device).to(ScalarType.Float32);
        if (_config.RopeScaling is { Type: "linear" } s) positions = positions / s.Factor;
        var freqs = outer(positions, invFreq);
        var emb = cat([freqs, freqs], -1);
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    Tensor InverseFrequencies(long sequenceLength)
    {
        int dim = _config.HeadDim;
        double theta = _config.RopeTheta;
        var scaling = _config.RopeScaling;
        // Dynamic NTK scaling raises the base once the sequence outgrows the trained context (HF semantics).
        if (scaling is { Type: "dynamic" } && sequenceLength > _config.MaxPositionEmbeddings)
            theta *= Math.Pow(scaling.Factor * sequenceLength / _config.MaxPositionEmbeddings - (scaling.Factor - 1), dim / (dim - 2.0));
        var exponents = arange(0, dim, 2, ScalarType.Int64, _device).to(ScalarType.Float32) / dim;
        var invFreq = 1.0f / pow(tensor(theta, ScalarType.Float32, _device), exponents);
        return scaling is { Type: "llama3" } ? Llama3(invFreq, scaling) : invFreq;
    }

    /// <summary>Llama 3.1's scaling: long wavelengths divided by the factor, short kept, a smooth blend between.</summary>
    static Tensor Llama3(Tensor invFreq, RopeScaling s)
    {
        double lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        double highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        var wavelen = 2 * Math.PI / invFreq;
        var scaled = where(wavelen > lowFreqWavelen, invFreq / s.Factor, invFreq);
        var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var smoothed = (1 - smooth) * scaled / s.Factor + smooth * scaled;
        var isMedium = (wavelen >= highFreqWavelen).logical_and(wavelen <= lowFreqWavelen);
        return where(isMedium, smoothed, scaled);
    }

    /// <summary>x·cos + rotate_half(x)·sin for x shaped [batch, heads, length, head_dim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}
