using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Phi3;

// Phi3ForCausalLM, bottom-up as HF's modeling_phi3. Diff vs Llama: fused projections under HF's keys, qkv_proj
// (rows q, k, v) and gate_up_proj (rows gate, up), whose outputs are split; RoPE on the first
// head_dim × partial_rotary_factor dimensions only (RotaryEmbedding); longrope scaling (short factors, or long ones for
// a sequence longer than original_max_position_embeddings, and the attention factor on cos/sin: RotaryEmbedding);
// no biases; the sliding window, when set, on every layer. The decoder layer, model and head are Llama's.
#pragma warning disable IDE1006

public sealed class Phi3Mlp : nn.Module<Tensor, Tensor>
{
    readonly Linear gate_up_proj, down_proj;
    readonly string _act;

    public Phi3Mlp(ModelConfig c, ScalarType dtype, Device device) : base(nameof(Phi3Mlp))
    {
        gate_up_proj = new Linear(c.HiddenSize, 2 * c.IntermediateSize, false, dtype, device);
        down_proj = new Linear(c.IntermediateSize, c.HiddenSize, false, dtype, device);
        _act = c.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gateUp = gate_up_proj.forward(x).chunk(2, -1);
        return down_proj.forward(gateUp[1].mul(Activations.Apply(_act, gateUp[0]))).MoveToOuterDisposeScope();
    }
}

public sealed class Phi3Attention : nn.Module, IDecoderBlock
{
    readonly Linear qkv_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim, _layer;

    public Phi3Attention(ModelConfig c, int layer, ScalarType dtype, Device device) : base(nameof(Phi3Attention))
    {
        (_heads, _kvHeads, _headDim, _layer) = (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, layer);
        qkv_proj = new Linear(c.HiddenSize, (_heads + 2 * _kvHeads) * _headDim, false, dtype, device);
        o_proj = new Linear(_heads * _headDim, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        // One matmul, its output split as HF does: rows q (heads · head_dim), k, v (kv_heads · head_dim each).
        var qkv = qkv_proj.forward(x).split([_heads * _headDim, _kvHeads * _headDim, _kvHeads * _headDim], -1);
        var q = Attention.SplitHeads(qkv[0], _heads, _headDim);
        var k = Attention.SplitHeads(qkv[1], _kvHeads, _headDim);
        var v = Attention.SplitHeads(qkv[2], _kvHeads, _headDim);
        return o_proj.forward(Attention.RotateAndAttend(q, k, v, angles, cache, _layer, mask)).MoveToOuterDisposeScope();
    }
}

public sealed class Phi3ForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : DecoderCausalLm<PreNormDecoderLayer<Phi3Attention, Phi3Mlp>>(c,
        i => new(c, new Phi3Attention(c, i, dtype, device), new Phi3Mlp(c, dtype, device), dtype, device), _ => c.SlidingWindow, dtype, device);
