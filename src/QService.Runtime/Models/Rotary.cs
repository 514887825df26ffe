using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// Rotary position embeddings (RoPE) with HF's layout: the two halves of each head are rotated together
/// (rotate_half), not interleaved pairs. Frequencies and angles are computed in float32 whatever the
/// compute dtype (as HF forces), then cast.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly ModelConfig _config;
    readonly Device _device;
    /// <summary>The inverse frequencies, computed once; null under dynamic scaling, where they depend on the length.</summary>
    readonly Tensor? _fixedInverseFrequencies;

    public RotaryEmbedding(ModelConfig config, Device device)
    {
        _config = config;
        _device = device;
        if (config.RopeScaling is not { Type: "dynamic" })
        {
            using var scope = NewDisposeScope();
            _fixedInverseFrequencies = InverseFrequencies(config.RopeTheta).DetachFromDisposeScope();
        }
    }

    /// <summary>cos and sin for positions [start, start + length), shaped [length, head_dim], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Compute(long start, long length, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Compute(Positions.Range(start, start + length, _device), start + length, dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>cos and sin for any int64 positions, shaped [..positions, head_dim]; <paramref name="sequenceLength"/> drives dynamic scaling.</summary>
    (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, long sequenceLength, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = _fixedInverseFrequencies ?? InverseFrequencies(DynamicTheta(sequenceLength));
        var positions = positionIds.to(ScalarType.Float32);
        if (_config.RopeScaling is { Type: "linear" } s)
        {
            using var factor = s.Factor.ToScalar();
            positions = positions.div(factor);
        }
        var freqs = positions.unsqueeze(-1).mul(invFreq); // the outer product, one rounding per entry as HF's
        var emb = cat([freqs, freqs], -1);
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>Dynamic NTK scaling raises the base once the sequence outgrows the trained context (HF semantics).</summary>
    double DynamicTheta(long sequenceLength)
    {
        int dim = _config.HeadDim;
        double theta = _config.RopeTheta;
        var scaling = _config.RopeScaling!;
        if (sequenceLength > _config.MaxPositionEmbeddings)
            theta *= Math.Pow(scaling.Factor * sequenceLength / _config.MaxPositionEmbeddings - (scaling.Factor - 1), dim / (dim - 2.0));
        return theta;
    }

    /// <summary>1 / theta^(2i/dim) in float32, as HF computes it. (Its few Scalars are made once per model, or per
    /// dynamic-scaling pass.)</summary>
    Tensor InverseFrequencies(double theta)
    {
        int dim = _config.HeadDim;
        var exponents = arange(0, dim, 2, ScalarType.Int64, _device).to(ScalarType.Float32) / dim;
        var invFreq = 1.0f / pow(tensor(theta, ScalarType.Float32, _device), exponents);
        return _config.RopeScaling is { Type: "llama3" } scaling ? Llama3(invFreq, scaling) : invFreq;
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

    public void Dispose() => _fixedInverseFrequencies?.Dispose();

    /// <summary>
    /// The angles for positions [batch or 1, length], once per forward pass for every layer, shaped
    /// [batch or 1, 1, length, head_dim] to broadcast over heads, with rotate_half's sign folded into sin:
    /// rotate_half(x)·sin = [x₂, x₁]·[−sin₁, sin₂].
    /// </summary>
    public RotaryAngles Angles(Tensor positions, long sequenceLength, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Compute(positions, sequenceLength, dtype);
        long half = sin.shape[^1] / 2;
        var signedSin = cat([-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)], -1);
        return new RotaryAngles(cos.unsqueeze(1).MoveToOuterDisposeScope(), signedSin.unsqueeze(1).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// x·cos + rotate_half(x)·sin for x shaped [batch, heads, length, head_dim], with two new tensors. Not
    /// addcmul: its fused multiply-add rounds differently in the vector body and the scalar tail, so a
    /// position would get other bits alone than in a longer sequence.
    /// </summary>
    public static Tensor Apply(Tensor x, RotaryAngles angles)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var swapped = cat([x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x.mul(angles.Cos).add_(swapped.mul_(angles.SignedSin), Scalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>cos and sign-folded sin, [batch or 1, 1, length, head_dim]; owned by the dispose scope of the forward pass that made them.</summary>
public sealed record RotaryAngles(Tensor Cos, Tensor SignedSin);
