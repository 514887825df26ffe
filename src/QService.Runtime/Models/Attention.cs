using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>Causal scaled-dot-product attention shared by all architectures, on LibTorch's fused kernel.</summary>
public static class Attention
{
    /// <summary>
    /// q: [batch, heads, new, head_dim]; k, v: [batch, kv_heads, past + new, head_dim]. Query i sits at
    /// absolute position past + i and sees keys 0..past+i, and with a sliding window only the last
    /// <paramref name="slidingWindow"/> of those. Right-padded batches need no padding mask: a real
    /// position never sees a later (padding) key.
    /// </summary>
    public static Tensor CausalSdpa(Tensor q, Tensor k, Tensor v, int? slidingWindow)
    {
        using var scope = NewDisposeScope();
        long heads = q.shape[1], kvHeads = k.shape[1];
        if (heads != kvHeads)
        {
            // Grouped-query attention: each kv head serves heads/kv_heads query heads (HF's repeat_kv).
            k = k.repeat_interleave(heads / kvHeads, 1);
            v = v.repeat_interleave(heads / kvHeads, 1);
        }
        long newLen = q.shape[2], total = k.shape[2], past = total - newLen;
        bool windowBites = slidingWindow is int w && total > w;
        if (past == 0 && !windowBites)
            return nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true) /* sic: TorchSharp spells it so */.MoveToOuterDisposeScope();

        var qPos = Positions.Range(past, total, q.device).unsqueeze(1);
        var kPos = Positions.Range(0, total, q.device).unsqueeze(0);
        var allowed = kPos <= qPos;
        if (windowBites)
        {
            using var window = slidingWindow!.Value.ToScalar();
            allowed = allowed.logical_and(qPos.add(kPos.neg(), Scalars.One).lt(window));
        }
        return nn.functional.scaled_dot_product_attention(q, k, v, allowed).MoveToOuterDisposeScope();
    }
}
