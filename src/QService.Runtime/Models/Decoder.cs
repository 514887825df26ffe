using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

// The decoder stack that HF's Llama-derived modeling files share (LlamaModel / LlamaDecoderLayer / the causal-LM
// head), generic over each architecture's attention and layer so that its file holds only its diff.
#pragma warning disable IDE1006 // field names follow the checkpoint keys

/// <summary>How a decoder layer, and the attention inside it, are called in every architecture.</summary>
public interface IDecoderBlock
{
    Tensor forward(Tensor x, RotaryAngles angles, IAttentionCache? cache, Tensor? mask);
}

/// <summary>Llama's decoder layer: pre-norm attention and MLP, each added to the residual (Qwen3 and Phi3 have it too).</summary>
public sealed class PreNormDecoderLayer<TAttention, TMlp> : nn.Module, IDecoderBlock
    where TAttention : nn.Module, IDecoderBlock where TMlp : nn.Module<Tensor, Tensor>
{
    readonly TAttention self_attn;
    readonly TMlp mlp;
    readonly RmsNorm input_layernorm, post_attention_layernorm;

    public PreNormDecoderLayer(ModelConfig c, TAttention attention, TMlp mlp, ScalarType dtype, Device device) : base("DecoderLayer")
    {
        self_attn = attention;
        this.mlp = mlp;
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

/// <summary>
/// embed_tokens → layers → norm (HF's LlamaModel and its copies). Positions, RoPE angles and the masks are made once
/// per pass, before any layer extends the cache, and shared by every layer; a layer's mask has its own window.
/// </summary>
public sealed class DecoderModel<TLayer> : nn.Module where TLayer : nn.Module, IDecoderBlock
{
    readonly Embedding embed_tokens;
    readonly ModuleList<TLayer> layers;
    readonly RmsNorm norm;
    readonly RotaryEmbedding _rotary;
    readonly int?[] _windows;

    /// <param name="windowOf">each layer's sliding window (null: full attention)</param>
    public DecoderModel(ModelConfig c, Func<int, TLayer> layer, Func<int, int?> windowOf, ScalarType dtype, Device device) : base("Model")
    {
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<TLayer>([.. Enumerable.Range(0, c.NumHiddenLayers).Select(layer)]);
        norm = new RmsNorm(c.HiddenSize, c.NormEps, dtype, device);
        _rotary = new RotaryEmbedding(c, device);
        _windows = [.. Enumerable.Range(0, c.NumHiddenLayers).Select(windowOf)];
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
        var angles = _rotary.Angles(Positions.Of(cache, length, ids.device), Positions.RopeLengths(cache, length), h.dtype);
        var masks = CausalMask.PerLayer(_windows, cache, length, ids.device);
        for (int i = 0; i < layers.Count; i++) h = layers[i].forward(h, angles, cache, masks[i]);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}

/// <summary>A <see cref="DecoderModel{TLayer}"/> and its output projection lm_head, which is the embedding matrix when tie_word_embeddings.</summary>
public class DecoderCausalLm<TLayer> : CausalLm where TLayer : nn.Module, IDecoderBlock
{
    readonly DecoderModel<TLayer> model;
    readonly Linear? lm_head; // absent when tied

    protected DecoderCausalLm(ModelConfig c, Func<int, TLayer> layer, Func<int, int?> windowOf, ScalarType dtype, Device device) : base(c.Architecture, c)
    {
        model = new DecoderModel<TLayer>(c, layer, windowOf, dtype, device);
        if (!c.TieWordEmbeddings) lm_head = new Linear(c.HiddenSize, c.VocabSize, false, dtype, device);
        RegisterComponents();
    }

    public override Tensor Hidden(Tensor ids, IAttentionCache? cache) => model.forward(ids, cache);

    public override Tensor Logits(Tensor hidden) =>
        lm_head is null ? nn.functional.linear(hidden, model.EmbeddingWeight) : lm_head.forward(hidden);
}
