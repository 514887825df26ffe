using TorchSharp;
using QService.Runtime.Models.Llama;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Qwen3;

// Qwen3ForCausalLM, as HF's modular_qwen3 (its diff against Qwen2/Llama): per-head RMSNorms q_norm and k_norm on
// queries and keys before RoPE; no q/k/v biases (attention_bias, default false, on all four projections); an
// explicit head_dim; a sliding window only on the layers whose layer_types say so (HF's default: when
// use_sliding_window, the layers from max_window_layers on). RMSNorm, the SwiGLU MLP, the decoder layer, model and
// head are Llama's.
#pragma warning disable IDE1006

public sealed class Qwen3Attention : nn.Module, IDecoderBlock
{
    readonly Linear q_proj, k_proj, v_proj, o_proj;
    readonly RmsNorm q_norm, k_norm; // over head_dim, on every head
    readonly int _heads, _kvHeads, _headDim, _layer;

    public Qwen3Attention(ModelConfig c, int layer, ScalarType dtype, Device device) : base(nameof(Qwen3Attention))
    {
        (_heads, _kvHeads, _headDim, _layer) = (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, layer);
        (q_proj, k_proj, v_proj, o_proj) = Attention.Projections(c, c.AttentionBias, c.AttentionBias, dtype, device);
        q_norm = new RmsNorm(_headDim, c.NormEps, dtype, device);
        k_norm = new RmsNorm(_headDim, c.NormEps, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], length = x.shape[1];
        // The norms act on [batch, length, heads, head_dim], before the heads move forward and before RoPE.
        var q = q_norm.forward(q_proj.forward(x).view(batch, length, _heads, _headDim)).transpose(1, 2);
        var k = k_norm.forward(k_proj.forward(x).view(batch, length, _kvHeads, _headDim)).transpose(1, 2);
        var v = Attention.SplitHeads(v_proj.forward(x), _kvHeads, _headDim);
        return o_proj.forward(Attention.RotateAndAttend(q, k, v, angles, cache, _layer, mask)).MoveToOuterDisposeScope();
    }
}

public sealed class Qwen3ForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : DecoderCausalLm<PreNormDecoderLayer<Qwen3Attention, LlamaMlp>>(c,
        i => new(c, new Qwen3Attention(c, i, dtype, device), new LlamaMlp(c, dtype, device), dtype, device), c.WindowOf, dtype, device);
