using QService.Runtime.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QService.Runtime.Models.Gpt2;

// GPT2LMHeadModel, bottom-up: MLP → attention → block → model → head. Diff vs Llama: learned absolute
// position embeddings (wpe), LayerNorm with bias, Conv1D weights stored [in, out], q/k/v packed in one
// c_attn projection, GELU (tanh) MLP, and the output projection tied to wte.
#pragma warning disable IDE1006

public sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    readonly Conv1D c_fc, c_proj;
    readonly string _act;

    public Gpt2Mlp(ModelConfig c, ScalarType dtype, Device device) : base(nameof(Gpt2Mlp))
    {
        c_fc = new Conv1D(c.HiddenSize, c.IntermediateSize, dtype, device);
        c_proj = new Conv1D(c.IntermediateSize, c.HiddenSize, dtype, device);
        _act = c.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return c_proj.forward(Activations.Apply(_act, c_fc.forward(x))).MoveToOuterDisposeScope();
    }
}

public sealed class Gpt2Attention : nn.Module
{
    readonly Conv1D c_attn, c_proj;
    readonly int _heads, _headDim, _layer;

    public Gpt2Attention(ModelConfig c, int layer, ScalarType dtype, Device device) : base(nameof(Gpt2Attention))
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        _layer = layer;
        c_attn = new Conv1D(c.HiddenSize, 3 * c.HiddenSize, dtype, device);
        c_proj = new Conv1D(c.HiddenSize, c.HiddenSize, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], length = x.shape[1], hidden = x.shape[2];
        var qkv = c_attn.forward(x).split(hidden, 2); // packed q, k, v along the last dimension
        Tensor Heads(Tensor t) => t.view(batch, length, _heads, _headDim).transpose(1, 2);
        Tensor q = Heads(qkv[0]), k = Heads(qkv[1]), v = Heads(qkv[2]);
        if (cache != null) (k, v) = cache.Update(_layer, k, v);
        var attended = Attention.CausalSdpa(q, k, v, mask);
        return c_proj.forward(attended.transpose(1, 2).reshape(batch, length, hidden)).MoveToOuterDisposeScope();
    }
}

public sealed class Gpt2Block : nn.Module
{
    readonly LayerNorm ln_1, ln_2;
    readonly Gpt2Attention attn;
    readonly Gpt2Mlp mlp;

    public Gpt2Block(ModelConfig c, int layer, ScalarType dtype, Device device) : base(nameof(Gpt2Block))
    {
        ln_1 = new LayerNorm(c.HiddenSize, c.NormEps, dtype, device);
        attn = new Gpt2Attention(c, layer, dtype, device);
        ln_2 = new LayerNorm(c.HiddenSize, c.NormEps, dtype, device);
        mlp = new Gpt2Mlp(c, dtype, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, IAttentionCache? cache, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var h = attn.forward(ln_1.forward(x), cache, mask).add_(x, Scalars.One);
        return mlp.forward(ln_2.forward(h)).add_(h, Scalars.One).MoveToOuterDisposeScope();
    }
}

public sealed class Gpt2Model : nn.Module
{
    readonly Embedding wte, wpe;
    readonly ModuleList<Gpt2Block> h;
    readonly LayerNorm ln_f;

    public Gpt2Model(ModelConfig c, ScalarType dtype, Device device) : base(nameof(Gpt2Model))
    {
        wte = new Embedding(c.VocabSize, c.HiddenSize, dtype, device);
        wpe = new Embedding(c.MaxPositionEmbeddings, c.HiddenSize, dtype, device);
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new Gpt2Block(c, i, dtype, device)).ToArray());
        ln_f = new LayerNorm(c.HiddenSize, c.NormEps, dtype, device);
        RegisterComponents();
    }

    public Tensor TokenEmbeddingWeight => wte.Weight;

    public Tensor forward(Tensor ids, IAttentionCache? cache)
    {
        using var scope = NewDisposeScope();
        long length = ids.shape[1];
        // Positions and the mask are computed once, before any block extends the cache.
        var positions = cache?.Positions(length, ids.device) ?? Positions.Range(0, length, ids.device).unsqueeze(0);
        var mask = cache?.Mask(length, slidingWindow: null, ids.device);
        var x = wte.forward(ids).add_(wpe.forward(positions), Scalars.One);
        foreach (var block in h) x = block.forward(x, cache, mask);
        return ln_f.forward(x).MoveToOuterDisposeScope();
    }
}

public sealed class Gpt2LMHeadModel : CausalLm
{
    readonly Gpt2Model transformer;

    public Gpt2LMHeadModel(ModelConfig c, ScalarType dtype, Device device) : base(c.Architecture, c)
    {
        if (!c.TieWordEmbeddings)
            throw new CheckpointException("GPT2LMHeadModel with tie_word_embeddings=false is not supported");
        transformer = new Gpt2Model(c, dtype, device);
        RegisterComponents();
    }

    public override Tensor Hidden(Tensor ids, IAttentionCache? cache) => transformer.forward(ids, cache);

    // lm_head is tied to transformer.wte (HF stores it once).
    public override Tensor Logits(Tensor hidden) => nn.functional.linear(hidden, transformer.TokenEmbeddingWeight);

    /// <summary>Published GPT-2 checkpoints store keys without the "transformer." prefix; the HF class adds it.</summary>
    protected override string? CheckpointKey(string parameterName, Checkpoint checkpoint)
    {
        if (checkpoint.Contains(parameterName)) return parameterName;
        const string prefix = "transformer.";
        string bare = parameterName.StartsWith(prefix, StringComparison.Ordinal) ? parameterName[prefix.Length..] : parameterName;
        return checkpoint.Contains(bare) ? bare : null;
    }
}
