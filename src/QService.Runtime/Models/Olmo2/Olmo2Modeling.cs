using TorchSharp;
using QService.Runtime.Models.Llama;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Olmo2;

// Olmo2ForCausalLM, as HF's modular_olmo2 (its diff against Llama): no pre-norms; the attention and MLP outputs are
// normed (post_attention_layernorm, post_feedforward_layernorm) before their residual adds; q_norm and k_norm are
// RMSNorms over the whole q and k projections (heads · head_dim), before the split into heads and RoPE. The MLP,
// model and head are Llama's.
#pragma warning disable IDE1006

public sealed class Olmo2Attention : nn.Module, IDecoderBlock
{
    readonly Linear q_proj, k_proj, v_proj, o_proj;
    readonly RmsNorm q_norm, k_norm;
    readonly int _heads, _kvHeads, _headDim, _layer;

    public Olmo2Attention(ModelConfig c, int layer, ScalarType dtype, Device device) : base(nameof(Olmo2Attention))
    {
        (_heads, _kvHeads, _headDim, _layer) = (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, layer);
        (q_proj, k_proj, v_proj, o_proj) = Attention.Projections(c, c.AttentionBias, c.AttentionBias, dtype, device);
        q_norm = new RmsNorm(_heads * _headDim, c.NormEps, dtype, device);
        k_norm = new RmsNorm(_kvHeads * _headDim, c.NormEps, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var q = Attention.SplitHeads(q_norm.forward(q_proj.forward(x)), _heads, _headDim);
        var k = Attention.SplitHeads(k_norm.forward(k_proj.forward(x)), _kvHeads, _headDim);
        var v = Attention.SplitHeads(v_proj.forward(x), _kvHeads, _headDim);
        return o_proj.forward(Attention.RotateAndAttend(q, k, v, angles, cache, _layer, mask)).MoveToOuterDisposeScope();
    }
}

public sealed class Olmo2DecoderLayer : nn.Module, IDecoderBlock
{
    readonly Olmo2Attention self_attn;
    readonly LlamaMlp mlp;
    readonly RmsNorm post_attention_layernorm, post_feedforward_layernorm;

    public Olmo2DecoderLayer(ModelConfig c, int layer, ScalarType dtype, Device device) : base(nameof(Olmo2DecoderLayer))
    {
        self_attn = new Olmo2Attention(c, layer, dtype, device);
        mlp = new LlamaMlp(c, dtype, device);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device);
        post_feedforward_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var h = post_attention_layernorm.forward(self_attn.forward(x, angles, cache, mask)).add_(x, Scalars.One);
        return post_feedforward_layernorm.forward(mlp.forward(h)).add_(h, Scalars.One).MoveToOuterDisposeScope();
    }
}

public sealed class Olmo2ForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : DecoderCausalLm<Olmo2DecoderLayer>(c, i => new Olmo2DecoderLayer(c, i, dtype, device), _ => null, dtype, device);
