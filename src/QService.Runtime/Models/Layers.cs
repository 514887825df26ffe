using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

// Building blocks shared by the architectures. Parameters are created empty (no random init, which would
// cost as much as the load itself on a large model) and filled from the checkpoint by CausalLm.LoadWeights.
// Field names are the HuggingFace state-dict keys, so a safetensors key maps to a field.
#pragma warning disable IDE1006 // field names follow the checkpoint keys

/// <summary>y = x Wᵀ + b, with W stored [out, in] as torch.nn.Linear and the checkpoints do; an active adapter may change it.</summary>
public sealed class Linear : nn.Module<Tensor, Tensor>, ILowRankLayer
{
    readonly Parameter weight;
    readonly Parameter? bias;

    public (long In, long Out) Features => (weight.shape[1], weight.shape[0]);
    public bool HasBias => bias is not null;
    public long[] WeightShape => weight.shape;
    public LowRankUpdate? Update { get; set; }
    public WeightReplacement? Replacement { get; set; }

    public Linear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base(nameof(Linear))
    {
        weight = new Parameter(empty([outFeatures, inFeatures], dtype, device));
        if (hasBias) bias = new Parameter(empty([outFeatures], dtype, device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = Replacement is { } r ? nn.functional.linear(x, r.Weight, r.Bias) : nn.functional.linear(x, weight, bias);
        return Update is { } update ? update.AddTo(y, x) : y;
    }
}

/// <summary>GPT-2's Conv1D: y = x W + b with W stored [in, out]. A LoRA update keeps the [r, in] / [out, r] shapes (PEFT's fan_in_fan_out).</summary>
public sealed class Conv1D : nn.Module<Tensor, Tensor>, ILowRankLayer
{
    readonly Parameter weight;
    readonly Parameter bias;

    public (long In, long Out) Features => (weight.shape[0], weight.shape[1]);
    public bool HasBias => true;
    public long[] WeightShape => weight.shape;
    public LowRankUpdate? Update { get; set; }
    public WeightReplacement? Replacement { get; set; }

    public Conv1D(long inFeatures, long outFeatures, ScalarType dtype, Device device) : base(nameof(Conv1D))
    {
        weight = new Parameter(empty([inFeatures, outFeatures], dtype, device));
        bias = new Parameter(empty([outFeatures], dtype, device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (w, b) = Replacement is { } r ? (r.Weight, r.Bias!) : (weight, bias);
        long[] outShape = [.. x.shape[..^1], w.shape[1]];
        var y = addmm(b, x.reshape(-1, x.shape[^1]), w, beta: 1, alpha: 1).view(outShape);
        return (Update is { } update ? update.AddTo(y, x) : y).MoveToOuterDisposeScope();
    }
}

/// <summary>Rows of the weight by token id; an active adapter may replace the weight (modules_to_save), never <see cref="Weight"/>.</summary>
public sealed class Embedding : nn.Module<Tensor, Tensor>, IReplaceableLayer
{
    readonly Parameter weight;

    public (long In, long Out) Features => (weight.shape[0], weight.shape[1]);
    public bool HasBias => false;
    public long[] WeightShape => weight.shape;
    public WeightReplacement? Replacement { get; set; }

    public Embedding(long count, long dim, ScalarType dtype, Device device) : base(nameof(Embedding))
    {
        weight = new Parameter(empty([count, dim], dtype, device));
        RegisterComponents();
    }

    /// <summary>The base weight, also when an adapter replaces it: a tied output projection keeps it, as under PEFT.</summary>
    public Tensor Weight => weight;

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var w = Replacement?.Weight ?? weight;
        long[] shape = [.. ids.shape, w.shape[1]];
        return w.index_select(0, ids.reshape(-1)).view(shape).MoveToOuterDisposeScope();
    }
}

public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Scalar _eps; // made once: a Scalar per call would leak until finalised (see Positions)
    readonly bool _unitOffset;

    /// <param name="unitOffset">Gemma's norm: scale by (1 + weight), all in float32 before the cast back</param>
    public RmsNorm(long dim, double eps, ScalarType dtype, Device device, bool unitOffset = false) : base(nameof(RmsNorm))
    {
        weight = new Parameter(empty([dim], dtype, device));
        _eps = eps.ToScalar();
        _unitOffset = unitOffset;
        RegisterComponents();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _eps.Dispose();
        base.Dispose(disposing);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // Normalise in float32 and cast back, as HF's LlamaRMSNorm does, so half-precision runs stay stable.
        // In place wherever the tensor is our own temporary; every Scalar explicit (see Scalars).
        var h = x.to(ScalarType.Float32);
        var inverseRms = h.mul(h).mean([-1], keepdim: true).add_(_eps, Scalars.One).rsqrt_(); // not square(): pow(2) leaks a Scalar
        if (_unitOffset)
            return (h * inverseRms).mul_(weight.to(ScalarType.Float32).add(Scalars.One, Scalars.One)).to(x.dtype).MoveToOuterDisposeScope();
        var normed = (h * inverseRms).to(x.dtype);
        return normed.mul_(weight).MoveToOuterDisposeScope();
    }
}

public sealed class LayerNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter bias;
    readonly double _eps;

    public LayerNorm(long dim, double eps, ScalarType dtype, Device device) : base(nameof(LayerNorm))
    {
        weight = new Parameter(empty([dim], dtype, device));
        bias = new Parameter(empty([dim], dtype, device));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => nn.functional.layer_norm(x, [x.shape[^1]], weight, bias, _eps);
}

public static class Activations
{
    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "silu" => nn.functional.silu(x),
        "relu" => nn.functional.relu(x),
        "gelu" => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" => GeluTanh(x),
        _ => throw new InvalidOperationException($"activation '{name}' is not supported. This is a bug: ModelConfig validates it."),
    };

    // Made once for the process: Scalars per call would leak until finalised (see Positions).
    static readonly Scalar Three = 3.0.ToScalar(), Cubic = 0.044715.ToScalar(), SqrtTwoOverPi = Math.Sqrt(2.0 / Math.PI).ToScalar(),
        Half = 0.5.ToScalar(), One = 1.0.ToScalar();

    /// <summary>The tanh approximation of GELU, written out as HF's NewGELUActivation does.</summary>
    static Tensor GeluTanh(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = x.pow(Three).mul_(Cubic).add_(x, Scalars.One).mul_(SqrtTwoOverPi);
        return (x * Half).mul_(inner.tanh_().add_(One)).MoveToOuterDisposeScope();
    }
}
