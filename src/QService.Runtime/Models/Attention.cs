using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>Causal scaled-dot-product attention shared by all architectures, on LibTorch's fused kernel (or eager where it cannot serve).</summary>
public static class Attention
{
    /// <summary>[batch, length, heads · head_dim] → [batch, heads, length, head_dim].</summary>
    public static Tensor SplitHeads(Tensor x, long heads, long headDim) => x.view(x.shape[0], x.shape[1], heads, headDim).transpose(1, 2);

    /// <summary>[batch, heads, length, head_dim] → [batch, length, heads · head_dim].</summary>
    public static Tensor MergeHeads(Tensor x) => x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]);

    /// <summary>q_proj, k_proj, v_proj, o_proj of a Llama-style attention (heads · head_dim wide; kv_heads for k and v).</summary>
    public static (Linear Q, Linear K, Linear V, Linear O) Projections(ModelConfig c, bool qkvBias, bool outputBias, ScalarType dtype, Device device) =>
        (new Linear(c.HiddenSize, c.NumAttentionHeads * c.HeadDim, qkvBias, dtype, device),
         new Linear(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, qkvBias, dtype, device),
         new Linear(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, qkvBias, dtype, device),
         new Linear(c.NumAttentionHeads * c.HeadDim, c.HiddenSize, outputBias, dtype, device));

    /// <summary>
    /// The common tail of a Llama-style attention, from q [batch, heads, new, head_dim] and k, v [batch, kv_heads, new,
    /// head_dim]: RoPE on q and k, the cache's past keys and values joined, SDPA, heads merged: [batch, new, heads · head_dim].
    /// </summary>
    public static Tensor RotateAndAttend(Tensor q, Tensor k, Tensor v, RotaryAngles angles, IAttentionCache? cache, int layer, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        q = RotaryEmbedding.Apply(q, angles);
        k = RotaryEmbedding.Apply(k, angles);
        if (cache != null) (k, v) = cache.Update(layer, k, v);
        return MergeHeads(CausalSdpa(q, k, v, mask)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// HF's eager attention: softmax(q·kᵀ·scale, soft-capped as tanh(s / cap)·cap when <paramref name="softcap"/> is
    /// set, then masked) · v, the softmax in float32. For what SDPA cannot do (Gemma2's capping, Gemma's scale).
    /// The mask is CausalMask's boolean, a DecodeBatch additive one, or null for plain causal from position 0.
    /// </summary>
    public static Tensor CausalEager(Tensor q, Tensor k, Tensor v, Tensor? mask, double scale, double? softcap)
    {
        using var scope = NewDisposeScope();
        (k, v) = RepeatKv(q, k, v);
        using var scaleScalar = scale.ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)).mul_(scaleScalar);
        if (softcap is double cap)
        {
            using var capScalar = cap.ToScalar();
            scores = scores.div_(capScalar).tanh_().mul_(capScalar);
        }
        mask ??= CausalMask.Build(Positions.Range(0, q.shape[2], q.device).unsqueeze(0), Positions.Range(0, k.shape[2], q.device).unsqueeze(0), null, null);
        if (mask.dtype == ScalarType.Bool)
        {
            using var minusInfinity = double.NegativeInfinity.ToScalar();
            scores = scores.masked_fill_(mask.logical_not(), minusInfinity);
        }
        else scores = scores.add_(mask, Scalars.One);
        return scores.softmax(-1, ScalarType.Float32).to(q.dtype).matmul(v).MoveToOuterDisposeScope();
    }

    /// <summary>Grouped-query attention: each kv head serves heads/kv_heads query heads (HF's repeat_kv).</summary>
    static (Tensor K, Tensor V) RepeatKv(Tensor q, Tensor k, Tensor v)
    {
        long heads = q.shape[1], kvHeads = k.shape[1];
        return heads == kvHeads ? (k, v) : (k.repeat_interleave(heads / kvHeads, 1), v.repeat_interleave(heads / kvHeads, 1));
    }

    /// <summary>
    /// q: [batch, heads, new, head_dim]; k, v: [batch, kv_heads, keys, head_dim]. Without a mask, plain causal
    /// attention from position 0 (LibTorch's fastest path); with one (<see cref="CausalMask"/>), what it
    /// allows. Right-padded batches need no padding mask: a real position never sees a later (padding) key.
    /// </summary>
    public static Tensor CausalSdpa(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        (k, v) = RepeatKv(q, k, v);
        return (mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true) /* sic: TorchSharp spells it so */
            : nn.functional.scaled_dot_product_attention(q, k, v, mask)).MoveToOuterDisposeScope();
    }
}
