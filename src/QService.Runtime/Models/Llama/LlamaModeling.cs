using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Llama;

// LlamaForCausalLM, read bottom-up: MLP → attention → decoder layer → model → causal-LM head (the last three shared: Decoder.cs).
// Field names are the HF checkpoint keys (model.layers.N.self_attn.q_proj.weight, ...).
#pragma warning disable IDE1006

public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    readonly Linear gate_proj, up_proj, down_proj;
    readonly string _act;

    public LlamaMlp(ModelConfig c, ScalarType dtype, Device device) : base(nameof(LlamaMlp))
    {
        gate_proj = new Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias, dtype, device);
        up_proj = new Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias, dtype, device);
        down_proj = new Linear(c.IntermediateSize, c.HiddenSize, c.MlpBias, dtype, device);
        _act = c.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = Activations.Apply(_act, gate_proj.forward(x)).mul_(up_proj.forward(x));
        return down_proj.forward(hidden).MoveToOuterDisposeScope();
    }
}

public sealed class LlamaAttention : nn.Module, IDecoderBlock
{
    readonly Linear q_proj, k_proj, v_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim, _layer;

    /// <param name="qkvBias">biases on q/k/v (Qwen2; Llama with attention_bias)</param>
    /// <param name="outputBias">bias on o_proj (Llama with attention_bias; never Qwen2)</param>
    public LlamaAttention(ModelConfig c, int layer, bool qkvBias, bool outputBias, ScalarType dtype, Device device) : base(nameof(LlamaAttention))
    {
        (_heads, _kvHeads, _headDim, _layer) = (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, layer);
        (q_proj, k_proj, v_proj, o_proj) = Attention.Projections(c, qkvBias, outputBias, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var q = Attention.SplitHeads(q_proj.forward(x), _heads, _headDim);
        var k = Attention.SplitHeads(k_proj.forward(x), _kvHeads, _headDim);
        var v = Attention.SplitHeads(v_proj.forward(x), _kvHeads, _headDim);
        return o_proj.forward(Attention.RotateAndAttend(q, k, v, angles, cache, _layer, mask)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The decoder layer (pre-norm attention and MLP), model (embed_tokens, layers, norm) and lm_head are the shared
/// <see cref="PreNormDecoderLayer{TAttention, TMlp}"/>, <see cref="DecoderModel{TLayer}"/> and <see cref="DecoderCausalLm{TLayer}"/>.
/// The sliding window, when the config has one, is on every layer (Mistral) or on the layers its layer types mark (Qwen2).
/// </summary>
public class LlamaForCausalLM : DecoderCausalLm<PreNormDecoderLayer<LlamaAttention, LlamaMlp>>
{
    public LlamaForCausalLM(ModelConfig c, ScalarType dtype, Device device)
        : this(c, qkvBias: c.AttentionBias, outputBias: c.AttentionBias, dtype, device) { }

    protected LlamaForCausalLM(ModelConfig c, bool qkvBias, bool outputBias, ScalarType dtype, Device device)
        : base(c, i => new(c, new LlamaAttention(c, i, qkvBias, outputBias, dtype, device), new LlamaMlp(c, dtype, device), dtype, device),
            c.WindowOf, dtype, device) { }
}
