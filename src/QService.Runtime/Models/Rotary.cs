using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// Rotary position embeddings (RoPE) with HF's layout: the two halves of each head are rotated together
/// (rotate_half), not interleaved pairs. Frequencies and angles are computed in float32 whatever the
/// compute dtype (as HF forces), then cast. With a partial rotary factor (Phi3) the angles cover the first
/// rotary_dim dimensions of a head and the rest passes unchanged.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly ModelConfig _config;
    readonly Device _device;
    /// <summary>The inverse frequencies of regime 0 (<see cref="ModelConfig.RopeRegime"/>): longrope's short factors, dynamic's unscaled base.</summary>
    readonly Tensor _baseInverseFrequencies;
    /// <summary>longrope's inverse frequencies under its long factors (regime 1).</summary>
    readonly Tensor? _longInverseFrequencies;

    public RotaryEmbedding(ModelConfig config, Device device)
    {
        _config = config;
        _device = device;
        using var scope = NewDisposeScope();
        if (config.RopeScaling is { Type: "longrope" } longRope)
        {
            _baseInverseFrequencies = LongRope(longRope.ShortFactor!).DetachFromDisposeScope();
            _longInverseFrequencies = LongRope(longRope.LongFactor!).DetachFromDisposeScope();
        }
        else _baseInverseFrequencies = InverseFrequencies(config.RopeTheta).DetachFromDisposeScope();
    }

    /// <summary>cos and sin for positions [start, start + length) of a sequence that long, shaped [length, rotary_dim], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Compute(long start, long length, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Compute(Positions.Range(start, start + length, _device), [start + length], dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>cos and sin for int64 positions [rows or 1, n], shaped [rows or 1, n, rotary_dim]; row b turned as in ropeLengths[b] tokens.</summary>
    (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, long[] ropeLengths, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = RowInverseFrequencies(ropeLengths);
        var positions = positionIds.to(ScalarType.Float32);
        if (_config.RopeScaling is { Type: "linear" } s)
        {
            using var factor = s.Factor.ToScalar();
            positions = positions.div(factor);
        }
        var freqs = positions.unsqueeze(-1).mul(invFreq); // the outer product, one rounding per entry as HF's
        var emb = cat([freqs, freqs], -1);
        var (cos, sin) = (emb.cos(), emb.sin());
        if (_config.RopeScaling is { Type: "longrope", AttentionFactor: var attention } && attention != 1)
        {
            using var factor = attention.ToScalar();
            (cos, sin) = (cos.mul_(factor), sin.mul_(factor));
        }
        return (cos.to(dtype).MoveToOuterDisposeScope(), sin.to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The inverse frequencies of each row's regime: one [rotary_dim / 2] vector when all rows share it, else [rows, 1, rotary_dim / 2].
    /// HF decides once per forward call from the batch's longest sequence; deciding per row makes a sequence's numbers the same
    /// alone as batched with longer ones, and lets a shared prefix be computed in the regime of the longer items that reuse it.
    /// </summary>
    Tensor RowInverseFrequencies(long[] ropeLengths)
    {
        int[] regimes = [.. ropeLengths.Select(l => _config.RopeRegime((int)l))];
        if (regimes.All(r => r == regimes[0])) return OfRegime(regimes[0]);
        using var scope = NewDisposeScope();
        return stack([.. regimes.Select(OfRegime)]).unsqueeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>Regime 0 and longrope's long factors are made once; dynamic scaling's base for one length past the context, in the caller's scope.</summary>
    Tensor OfRegime(int regime) => regime switch
    {
        0 => _baseInverseFrequencies,
        _ when _longInverseFrequencies is not null => _longInverseFrequencies,
        _ => InverseFrequencies(DynamicTheta(regime)),
    };

    /// <summary>Phi3's longrope frequencies for one factor set: 1 / (factor_i · theta^(2i/dim)), in float32 as HF.</summary>
    Tensor LongRope(double[] factors)
    {
        int dim = _config.RotaryDim;
        var exponents = arange(0, dim, 2, ScalarType.Int64, _device).to(ScalarType.Float32) / dim;
        return 1.0f / tensor(factors, ScalarType.Float32, _device).mul_(pow(tensor(_config.RopeTheta, ScalarType.Float32, _device), exponents));
    }

    /// <summary>Dynamic NTK scaling raises the base once the sequence outgrows the trained context (HF semantics).</summary>
    double DynamicTheta(long sequenceLength)
    {
        int dim = _config.RotaryDim;
        double theta = _config.RopeTheta;
        var scaling = _config.RopeScaling!;
        if (sequenceLength > _config.MaxPositionEmbeddings)
            theta *= Math.Pow(scaling.Factor * sequenceLength / _config.MaxPositionEmbeddings - (scaling.Factor - 1), dim / (dim - 2.0));
        return theta;
    }

    /// <summary>1 / theta^(2i/dim) in float32, as HF computes it. (Its few Scalars are made once per model, or per
    /// dynamic-scaling length.)</summary>
    Tensor InverseFrequencies(double theta)
    {
        int dim = _config.RotaryDim;
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

    public void Dispose()
    {
        _baseInverseFrequencies.Dispose();
        _longInverseFrequencies?.Dispose();
    }

    /// <summary>
    /// The angles for positions [batch or 1, length], once per forward pass for every layer, shaped
    /// [batch or 1, 1, length, head_dim] to broadcast over heads, with rotate_half's sign folded into sin:
    /// rotate_half(x)·sin = [x₂, x₁]·[−sin₁, sin₂]. Row b turns as in a sequence of ropeLengths[b] tokens
    /// (<see cref="IAttentionCache.RopeLengths"/>; one entry for positions [1, length]).
    /// </summary>
    public RotaryAngles Angles(Tensor positions, long[] ropeLengths, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Compute(positions, ropeLengths, dtype);
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
        long rotary = angles.Cos.shape[^1], dim = x.shape[^1];
        if (rotary < dim) // partial rotary: the first rotary_dim dimensions turn, the rest pass
            return cat([Apply(x.narrow(-1, 0, rotary), angles), x.narrow(-1, rotary, dim - rotary)], -1).MoveToOuterDisposeScope();
        long half = x.shape[^1] / 2;
        var swapped = cat([x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x.mul(angles.Cos).add_(swapped.mul_(angles.SignedSin), Scalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>cos and sign-folded sin, [batch or 1, 1, length, head_dim]; owned by the dispose scope of the forward pass that made them.</summary>
public sealed record RotaryAngles(Tensor Cos, Tensor SignedSin);
