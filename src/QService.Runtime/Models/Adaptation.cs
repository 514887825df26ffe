using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// A LoRA update a layer adds to its output while an adapter is active: y += (x Aᵀ) Bᵀ with A [r, in] and B [out, r],
/// B already multiplied by the adapter's scaling. Owned by the adapter, never by the layer.
/// </summary>
public sealed record LowRankUpdate(Tensor A, Tensor ScaledB)
{
    /// <summary>Adds the update for input <paramref name="x"/> to <paramref name="y"/> in place (y is the layer's own fresh output).</summary>
    public Tensor AddTo(Tensor y, Tensor x)
    {
        using var scope = NewDisposeScope();
        y.add_(nn.functional.linear(nn.functional.linear(x, A), ScaledB), Scalars.One);
        return y;
    }
}

/// <summary>Whole replacement weights (PEFT's modules_to_save) a layer uses instead of its own while an adapter is active.</summary>
public sealed record WeightReplacement(Tensor Weight, Tensor? Bias);

/// <summary>A layer whose weights an adapter can replace while it is active (linear layers, embeddings).</summary>
public interface IReplaceableLayer
{
    /// <summary>[in, out] features of the layer's input and output (an embedding: [rows, dim]).</summary>
    (long In, long Out) Features { get; }

    /// <summary>Whether the layer has a bias a replacement must bring too.</summary>
    bool HasBias { get; }

    /// <summary>The shape of the weight as the checkpoint stores it.</summary>
    long[] WeightShape { get; }

    WeightReplacement? Replacement { get; set; }
}

/// <summary>A linear layer, which also takes a LoRA update on its output.</summary>
public interface ILowRankLayer : IReplaceableLayer
{
    LowRankUpdate? Update { get; set; }
}
