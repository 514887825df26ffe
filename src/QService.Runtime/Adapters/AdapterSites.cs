using QService.Runtime.Models;
using TorchSharp;

namespace QService.Runtime.Adapters;

/// <summary>A module of the base under its HuggingFace name, and the layer an adapter can change there (null: none).</summary>
public sealed record AdapterSite(string Name, string TypeName, IReplaceableLayer? Layer)
{
    /// <summary>The layer when it takes a LoRA update (a linear layer), else null.</summary>
    public ILowRankLayer? LowRank => Layer as ILowRankLayer;

    /// <summary>A linear layer that is not the output projection: what PEFT's "all-linear" takes.</summary>
    public bool IsLinear => LowRank is not null && Name != AdapterSites.OutputProjection;
}

public static class AdapterSites
{
    /// <summary>The output projection's name in every architecture with an untied one; "all-linear" leaves it out.</summary>
    public const string OutputProjection = "lm_head";

    /// <summary>Every module of the base (the root excluded), in registration order.</summary>
    public static IReadOnlyList<AdapterSite> Of(CausalLm module) =>
        [.. module.named_modules().Where(m => m.name.Length > 0).Select(m => new AdapterSite(m.name, m.module.GetType().Name, m.module as IReplaceableLayer))];
}
