using TorchSharp;
using TorchSharp.Modules;
using QService.Runtime.Models.Llama;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Gemma2;

// Gemma2ForCausalLM, bottom-up as HF's modeling_gemma2. Diff vs Llama: embeddings × sqrt(hidden_size) (the scalar in
// the compute dtype); RMSNorms scale by (1 + weight) in float32; four norms per layer (the sublayers' outputs are
// normed too, before their residual adds); a GELU-tanh gated MLP (Llama's, with hidden_activation); attention scores
// scaled by query_pre_attn_scalar^-0.5 and soft-capped, so the eager path, not SDPA; final logits soft-capped; sliding
// window on the layers layer_types mark (even ones by default). Gemma3 adds per-head q/k norms and a local RoPE base
// on its sliding layers (Gemma3/Gemma3Modeling.cs), both switched here by the config.
#pragma warning disable IDE1006

public sealed class Gemma2Attention : nn.Module
{
    readonly Linear q_proj, k_proj, v_proj, o_proj;
    readonly RmsNorm? q_norm, k_norm; // Gemma3 only: (1 + w) RMSNorm over head_dim, per head, before RoPE
    readonly int _heads, _kvHeads, _headDim, _layer;
    readonly double _scale;
    readonly double? _softcap;

    public Gemma2Attention(ModelConfig c, int layer, bool perHeadNorms, ScalarType dtype, Device device) : base(nameof(Gemma2Attention))
    {
        (_heads, _kvHeads, _headDim, _layer) = (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, layer);
        q_proj = new Linear(c.HiddenSize, _heads * _headDim, c.AttentionBias, dtype, device);
        k_proj = new Linear(c.HiddenSize, _kvHeads * _headDim, c.AttentionBias, dtype, device);
        v_proj = new Linear(c.HiddenSize, _kvHeads * _headDim, c.AttentionBias, dtype, device);
        o_proj = new Linear(_heads * _headDim, c.HiddenSize, c.AttentionBias, dtype, device);
        if (perHeadNorms)
        {
            q_norm = new RmsNorm(_headDim, c.NormEps, dtype, device, unitOffset: true);
            k_norm = new RmsNorm(_headDim, c.NormEps, dtype, device, unitOffset: true);
        }
        _scale = Math.Pow(c.QueryPreAttnScalar!.Value, -0.5);
        _softcap = c.AttnLogitSoftcapping;
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], length = x.shape[1];
        var q = q_proj.forward(x).view(batch, length, _heads, _headDim);
        var k = k_proj.forward(x).view(batch, length, _kvHeads, _headDim);
        if (q_norm is not null) (q, k) = (q_norm.forward(q), k_norm!.forward(k));
        q = RotaryEmbedding.Apply(q.transpose(1, 2), angles);
        k = RotaryEmbedding.Apply(k.transpose(1, 2), angles);
        var v = Attention.SplitHeads(v_proj.forward(x), _kvHeads, _headDim);
        if (cache != null) (k, v) = cache.Update(_layer, k, v);
        var attended = Attention.CausalEager(q, k, v, mask, _scale, _softcap);
        return o_proj.forward(Attention.MergeHeads(attended)).MoveToOuterDisposeScope();
    }
}

public sealed class Gemma2DecoderLayer : nn.Module
{
    readonly Gemma2Attention self_attn;
    readonly LlamaMlp mlp;
    readonly RmsNorm input_layernorm, post_attention_layernorm, pre_feedforward_layernorm, post_feedforward_layernorm;

    public Gemma2DecoderLayer(ModelConfig c, int layer, bool perHeadNorms, ScalarType dtype, Device device) : base(nameof(Gemma2DecoderLayer))
    {
        self_attn = new Gemma2Attention(c, layer, perHeadNorms, dtype, device);
        mlp = new LlamaMlp(c, dtype, device);
        input_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device, unitOffset: true);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device, unitOffset: true);
        pre_feedforward_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device, unitOffset: true);
        post_feedforward_layernorm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device, unitOffset: true);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var attended = self_attn.forward(input_layernorm.forward(x), angles, cache, mask);
        var h = post_attention_layernorm.forward(attended).add_(x, Scalars.One);
        return post_feedforward_layernorm.forward(mlp.forward(pre_feedforward_layernorm.forward(h))).add_(h, Scalars.One).MoveToOuterDisposeScope();
    }
}

public sealed class Gemma2Model : nn.Module
{
    readonly Embedding embed_tokens;
    readonly ModuleList<Gemma2DecoderLayer> layers;
    readonly RmsNorm norm;
    readonly RotaryEmbedding _rotary;
    /// <summary>Gemma3's sliding layers: RoPE with base rope_local_base_freq and no scaling; null for Gemma2.</summary>
    readonly RotaryEmbedding? _localRotary;
    readonly double _normalizer;
    readonly ModelConfig _config;

    public Gemma2Model(ModelConfig c, bool perHeadNorms, ScalarType dtype, Device device) : base(nameof(Gemma2Model))
    {
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<Gemma2DecoderLayer>(
            [.. Enumerable.Range(0, c.NumHiddenLayers).Select(i => new Gemma2DecoderLayer(c, i, perHeadNorms, dtype, device))]);
        norm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device, unitOffset: true);
        _rotary = new RotaryEmbedding(c, device);
        if (c.RopeLocalBaseFreq is double local) _localRotary = new RotaryEmbedding(c with { RopeTheta = local, RopeScaling = null }, device);
        _normalizer = Math.Sqrt(c.HiddenSize);
        _config = c;
        RegisterComponents();
    }

    public Tensor EmbeddingWeight => embed_tokens.Weight;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rotary.Dispose();
            _localRotary?.Dispose();
        }
        base.Dispose(disposing);
    }

    public Tensor forward(Tensor ids, IAttentionCache? cache)
    {
        using var scope = NewDisposeScope();
        long length = ids.shape[1];
        long[] ropeLengths = Positions.RopeLengths(cache, length);
        var embeds = embed_tokens.forward(ids);
        var h = embeds.mul_(tensor(_normalizer, embeds.dtype, embeds.device)); // sqrt(hidden_size) rounded to the compute dtype, as HF

        var positions = Positions.Of(cache, length, ids.device);
        var angles = _rotary.Angles(positions, ropeLengths, h.dtype);
        var localAngles = _localRotary?.Angles(positions, ropeLengths, h.dtype) ?? angles;
        var masks = CausalMask.PerLayer([.. Enumerable.Range(0, layers.Count).Select(_config.WindowOf)], cache, length, ids.device);
        for (int i = 0; i < layers.Count; i++)
            h = layers[i].forward(h, _config.WindowOf(i) is null ? angles : localAngles, cache, masks[i]);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}

public class Gemma2ForCausalLM : CausalLm
{
    readonly Gemma2Model model;
    readonly Linear? lm_head; // absent when tie_word_embeddings (Gemma's default)
    readonly double? _finalSoftcap;

    public Gemma2ForCausalLM(ModelConfig c, ScalarType dtype, Device device) : this(c, perHeadNorms: false, dtype, device) { }

    protected Gemma2ForCausalLM(ModelConfig c, bool perHeadNorms, ScalarType dtype, Device device) : base(c.Architecture, c)
    {
        model = new Gemma2Model(c, perHeadNorms, dtype, device);
        if (!c.TieWordEmbeddings) lm_head = new Linear(c.HiddenSize, c.VocabSize, false, dtype, device);
        _finalSoftcap = c.FinalLogitSoftcapping;
        RegisterComponents();
    }

    public override Tensor Hidden(Tensor ids, IAttentionCache? cache) => model.forward(ids, cache);

    public override Tensor Logits(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var logits = lm_head is null ? nn.functional.linear(hidden, model.EmbeddingWeight) : lm_head.forward(hidden);
        if (_finalSoftcap is double cap)
        {
            using var capScalar = cap.ToScalar();
            logits = logits.div_(capScalar).tanh_().mul_(capScalar);
        }
        return logits.MoveToOuterDisposeScope();
    }
}
