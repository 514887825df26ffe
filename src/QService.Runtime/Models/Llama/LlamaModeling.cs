using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Llama;

// LlamaForCausalLM, read bottom-up: MLP → attention → decoder layer → model → causal-LM head.
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

public sealed class LlamaAttention : nn.Module
{
    readonly Linear q_proj, k_proj, v_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim, _layer;

    /// <param name="qkvBias">biases on q/k/v (Qwen2; Llama with attention_bias)</param>
    /// <param name="outputBias">bias on o_proj (Llama with attention_bias; never Qwen2)</param>
    public LlamaAttention(ModelConfig c, int layer, bool qkvBias, bool outputBias, ScalarType dtype, Device device) : base(nameof(LlamaAttention))
    {
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        _layer = layer;
        q_proj = new Linear(c.HiddenSize, _heads * _headDim, qkvBias, dtype, device);
        k_proj = new Linear(c.HiddenSize, _kvHeads * _headDim, qkvBias, dtype, device);
        v_proj = new Linear(c.HiddenSize, _kvHeads * _headDim, qkvBias, dtype, device);
        o_proj = new Linear(_heads * _headDim, c.HiddenSize, outputBias, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], length = x.shape[1];
        var q = q_proj.forward(x).view(batch, length, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, angles);
        k = RotaryEmbedding.Apply(k, angles);
        if (cache != null) (k, v) = cache.Update(_layer, k, v);
        var attended = Attention.CausalSdpa(q, k, v, mask);
        var merged = attended.transpose(1, 2).reshape(batch, length, _heads * _headDim);
        return o_proj.forward(merged).MoveToOuterDisposeScope();
    }
}

public sealed class LlamaDecoderLayer : nn.Module
{
    readonly LlamaAttention self_attn;
    readonly LlamaMlp mlp;
    readonly RmsNorm input_layernorm, post_attention_layernorm;

    public LlamaDecoderLayer(ModelConfig c, int layer, bool qkvBias, bool outputBias, ScalarType dtype, Device device) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(c, layer, qkvBias, outputBias, dtype, device);
        mlp = new LlamaMlp(c, dtype, device);
        input_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        // Self attention (the residual added in place: the sublayer's output is ours to reuse)
        var h = self_attn.forward(input_layernorm.forward(x), angles, cache, mask).add_(x, Scalars.One);
        // Fully connected
        return mlp.forward(post_attention_layernorm.forward(h)).add_(h, Scalars.One).MoveToOuterDisposeScope();
    }
}

public sealed class LlamaModel : nn.Module
{
    readonly Embedding embed_tokens;
    readonly ModuleList<LlamaDecoderLayer> layers;
    readonly RmsNorm norm;
    readonly RotaryEmbedding _rotary;
    readonly int? _slidingWindow;

    public LlamaModel(ModelConfig c, bool qkvBias, bool outputBias, ScalarType dtype, Device device) : base(nameof(LlamaModel))
    {
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<LlamaDecoderLayer>(
            Enumerable.Range(0, c.NumHiddenLayers).Select(i => new LlamaDecoderLayer(c, i, qkvBias, outputBias, dtype, device)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device);
        _rotary = new RotaryEmbedding(c, device);
        _slidingWindow = c.SlidingWindow;
        RegisterComponents();
    }

    public Tensor EmbeddingWeight => embed_tokens.Weight;

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }

    public Tensor forward(Tensor ids, IAttentionCache? cache)
    {
        using var scope = NewDisposeScope();
        long length = ids.shape[1];
        var h = embed_tokens.forward(ids);
        // Positions, RoPE angles and the mask are computed once, before any layer extends the cache, and shared by every layer.
        var positions = cache?.Positions(length, ids.device) ?? Positions.Range(0, length, ids.device).unsqueeze(0);
        var angles = _rotary.Angles(positions, cache?.SequenceLength(length) ?? length, h.dtype);
        var mask = cache is null ? CausalMask.Fresh(length, _slidingWindow, ids.device) : cache.Mask(length, _slidingWindow, ids.device);
        foreach (var layer in layers) h = layer.forward(h, angles, cache, mask);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}

public class LlamaForCausalLM : CausalLm
{
    readonly LlamaModel model;
    readonly Linear? lm_head; // absent when tie_word_embeddings: the embedding matrix is the output projection

    public LlamaForCausalLM(ModelConfig c, ScalarType dtype, Device device)
        : this(c, qkvBias: c.AttentionBias, outputBias: c.AttentionBias, dtype, device) { }

    protected LlamaForCausalLM(ModelConfig c, bool qkvBias, bool outputBias, ScalarType dtype, Device device) : base(c.Architecture, c)
    {
        model = new LlamaModel(c, qkvBias, outputBias, dtype, device);
        if (!c.TieWordEmbeddings) lm_head = new Linear(c.HiddenSize, c.VocabSize, false, dtype, device);
        RegisterComponents();
    }

    public override Tensor Hidden(Tensor ids, IAttentionCache? cache) => model.forward(ids, cache);

    public override Tensor Logits(Tensor hidden) =>
        lm_head is null ? nn.functional.linear(hidden, model.EmbeddingWeight) : lm_head.forward(hidden);
}
