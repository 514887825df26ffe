using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>Causal scaled-dot-product attention shared by all architectures, on LibTorch's fused kernel.</summary>
public static class Attention
{
    /// <summary>
    /// q: [batch, heads, new, head_dim]; k, v: [batch, kv_heads, keys, head_dim]. Without a mask, plain causal
    /// attention from position 0 (LibTorch's fastest path); with one (<see cref="CausalMask"/>), what it
    /// allows. Right-padded batches need no padding mask: a real position never sees a later (padding) key.
    /// </summary>
    public static Tensor CausalSdpa(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long heads = q.shape[1], kvHeads = k.shape[1];
        if (heads != kvHeads)
        {
            // Grouped-query attention: each kv head serves heads/kv_heads query heads (HF's repeat_kv).
            k = k.repeat_interleave(heads / kvHeads, 1);
            v = v.repeat_interleave(heads / kvHeads, 1);
        }
        return (mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true) /* sic: TorchSharp spells it so */
            : nn.functional.scaled_dot_product_attention(q, k, v, mask)).MoveToOuterDisposeScope();
    }
}
