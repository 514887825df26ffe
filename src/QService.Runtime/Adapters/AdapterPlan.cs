using QService.Runtime.Loading;
using QService.Runtime.Models;
using static TorchSharp.torch;

namespace QService.Runtime.Adapters;

/// <summary>
/// What an adapter does to a base, checked before any tensor is read: the config's targets resolved on the base's
/// modules (PEFT's rules, <see cref="LoraTargets"/>) must be exactly the modules the file has lora_A/lora_B for, with
/// shapes that fit; modules_to_save copies must replace a linear layer or an embedding, whole.
/// </summary>
sealed class AdapterPlan
{
    public sealed record Target(string Module, ILowRankLayer Layer, string AKey, string BKey, double Scaling);

    public sealed record SavedModule(string Module, IReplaceableLayer Layer, string WeightKey, string? BiasKey);

    public required IReadOnlyList<Target> Targets { get; init; }
    public required IReadOnlyList<SavedModule> Saved { get; init; }
    public required AdapterTensors Tensors { get; init; }

    public static AdapterPlan Make(LoraAdapterConfig config, AdapterTensors tensors, CausalLm module)
    {
        var rules = new LoraTargets(config);
        var sites = AdapterSites.Of(module);
        var byName = sites.ToDictionary(s => s.Name, StringComparer.Ordinal);
        string file = tensors.File.Path;
        bool tied = module.Config.TieWordEmbeddings;
        string NoSuchModule(string key, string name) => name == AdapterSites.OutputProjection && tied
            ? $"{file}: tensor '{key}': lm_head is tied to the input embedding in this base (tie_word_embeddings), and an adapter " +
              "that adapts or replaces a tied lm_head is not supported"
            : $"{file}: tensor '{key}' names module '{name}', which the base ({module.Config.Architecture}) does not have";

        foreach (var (name, (a, b)) in tensors.LowRank)
        {
            string key = a ?? b!;
            if (!byName.TryGetValue(name, out var site)) throw new CheckpointException(NoSuchModule(key, name));
            if (site.LowRank is null)
                throw new CheckpointException($"{file}: tensor '{key}': module '{name}' ({site.TypeName}) cannot take a LoRA update here");
            if (!rules.IsTarget(name, site.IsLinear))
                throw new CheckpointException($"{file}: tensor '{key}': module '{name}' is not among the targets of {config.Path} (target_modules)");
            if (a is null || b is null)
                throw new CheckpointException($"{file}: module '{name}' has {(a is null ? "lora_B but no lora_A" : "lora_A but no lora_B")}");
        }
        var targets = new List<Target>();
        foreach (var site in sites.Where(s => rules.IsTarget(s.Name, s.IsLinear)))
        {
            if (site.LowRank is not { } layer)
                throw new CheckpointException($"{config.Path}: target_modules matches '{site.Name}' ({site.TypeName}), " +
                    "which LoRA cannot adapt here (linear layers only)");
            if (!tensors.LowRank.TryGetValue(site.Name, out var keys))
                throw new CheckpointException($"{config.Path}: target_modules matches '{site.Name}', but {file} has no lora_A/lora_B for it");
            var (r, alpha) = rules.RankAndAlpha(site.Name);
            var (inFeatures, outFeatures) = layer.Features;
            string why = $"(in {inFeatures}, out {outFeatures}, r {r}{(config.RankPattern.Count > 0 ? " after rank_pattern" : "")})";
            tensors.CheckShape(keys.A!, [r, inFeatures], site.Name, why);
            tensors.CheckShape(keys.B!, [outFeatures, r], site.Name, why);
            targets.Add(new Target(site.Name, layer, keys.A!, keys.B!, rules.Scaling(site.Name)));
        }
        if (targets.Count == 0 && tensors.Replaced.Count == 0)
            throw new CheckpointException($"{config.Path}: target_modules matches no module of the base ({module.Config.Architecture})");
        return new AdapterPlan { Targets = targets, Saved = SavedModules(config, rules, tensors, sites, tied, NoSuchModule), Tensors = tensors };
    }

    static List<SavedModule> SavedModules(LoraAdapterConfig config, LoraTargets rules, AdapterTensors tensors, IReadOnlyList<AdapterSite> sites,
        bool tied, Func<string, string, string> noSuchModule)
    {
        string file = tensors.File.Path;
        foreach (var (name, parameters) in tensors.Replaced)
        {
            string key = parameters.Values.First();
            if (!sites.Any(s => s.Name == name)) throw new CheckpointException(noSuchModule(key, name));
            if (!rules.IsSaved(name))
                throw new CheckpointException($"{file}: tensor '{key}': module '{name}' is not in modules_to_save of {config.Path}");
        }
        var saved = new List<SavedModule>();
        foreach (var site in sites.Where(s => rules.IsSaved(s.Name)))
        {
            if (site.Layer is null)
                throw new CheckpointException($"{config.Path}: modules_to_save names '{site.Name}' ({site.TypeName}); only a linear layer or an " +
                    "embedding can be replaced");
            if (!tensors.Replaced.TryGetValue(site.Name, out var parameters) || !parameters.TryGetValue("weight", out var weightKey))
                throw new CheckpointException($"{config.Path}: modules_to_save names '{site.Name}', but {file} has no '{site.Name}.weight'");
            if (config.EnsureWeightTying && tied && site.Layer is Embedding)
                throw new CheckpointException($"{config.Path}: ensure_weight_tying is true with the embedding of a tied base in modules_to_save; " +
                    "tying the output projection to the replaced embedding is not supported");
            tensors.CheckShape(weightKey, site.Layer.WeightShape, site.Name, "(modules_to_save)");
            parameters.TryGetValue("bias", out var biasKey);
            if (site.Layer.HasBias != biasKey is not null)
                throw new CheckpointException($"{file}: modules_to_save '{site.Name}' {(site.Layer.HasBias ? "has no bias, the base module has one"
                    : "has a bias, the base module has none")}");
            if (biasKey is not null) tensors.CheckShape(biasKey, [site.Layer.Features.Out], site.Name, "(modules_to_save bias)");
            saved.Add(new SavedModule(site.Name, site.Layer, weightKey, biasKey));
        }
        return saved;
    }

    /// <summary>A tensor of the file times <paramref name="scale"/> (in float32), in the model's dtype and device.</summary>
    public Tensor Read(string key, ScalarType dtype, Device device, double scale)
    {
        using var scope = NewDisposeScope();
        var t = Tensors.File.Read(key).to(ScalarType.Float32);
        if (scale != 1)
        {
            using var factor = TorchSharp.ScalarExtensionMethods.ToScalar(scale); // an explicit Scalar: an implicit one leaks (see Scalars)
            t = t.mul(factor);
        }
        return t.to(dtype, device).contiguous().MoveToOuterDisposeScope();
    }
}
