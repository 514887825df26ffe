using QService.Runtime.Loading;
using QService.Runtime.Models;
using static TorchSharp.torch;

namespace QService.Runtime.Adapters;

/// <summary>
/// A PEFT LoRA adapter attached to a loaded base module: per targeted layer A and scaling·B, and modules_to_save's
/// replacement weights. It changes nothing until <see cref="Activate"/>, which sets the layers' slots for one forward;
/// the base's own weights are never copied or changed, so the same module serves the base (adapter off) in between.
/// Owns only its tensors. One owner thread, like the models.
/// </summary>
public sealed class PeftAdapter : IDisposable
{
    readonly (ILowRankLayer Layer, LowRankUpdate Update)[] _updates;
    readonly (IReplaceableLayer Layer, WeightReplacement Replacement)[] _replacements;
    readonly Deactivation _deactivation;

    public AdapterDescription Description { get; }

    PeftAdapter((ILowRankLayer, LowRankUpdate)[] updates, (IReplaceableLayer, WeightReplacement)[] replacements, AdapterDescription description)
    {
        (_updates, _replacements, Description) = (updates, replacements, description);
        _deactivation = new Deactivation(this);
    }

    /// <summary>Whether the folder holds a PEFT adapter (adapter_config.json).</summary>
    public static bool IsAdapterFolder(string folder) => File.Exists(Path.Combine(folder, LoraAdapterConfig.FileName));

    /// <summary>
    /// base_model_name_or_path as written: a hub id, an absolute path, or a path relative to the adapter folder; null when
    /// absent. Reads and checks the whole config, so an adapter the runtime refuses fails here, before its base is loaded.
    /// </summary>
    public static string? BaseModelPath(string adapterFolder) => LoraAdapterConfig.Load(adapterFolder).BaseModelNameOrPath;

    /// <summary>The base model's local folder when base_model_name_or_path names one (absolute, or relative to the adapter folder), else null.</summary>
    public static string? LocalBaseFolder(string adapterFolder)
    {
        string? written = BaseModelPath(adapterFolder);
        if (string.IsNullOrEmpty(written)) return null;
        string candidate = Path.IsPathRooted(written) ? written : Path.GetFullPath(Path.Combine(adapterFolder, written));
        return Directory.Exists(candidate) ? candidate : null;
    }

    /// <summary>Reads the adapter in <paramref name="folder"/> for <paramref name="module"/>; every mismatch is a one-line CheckpointException.</summary>
    public static PeftAdapter Load(CausalLm module, string folder, ScalarType dtype, Device device)
    {
        var config = LoraAdapterConfig.Load(folder);
        var plan = AdapterPlan.Make(config, AdapterTensors.Open(folder), module);
        var updates = new List<(ILowRankLayer, LowRankUpdate)>();
        var replacements = new List<(IReplaceableLayer, WeightReplacement)>();
        try
        {
            using var noGrad = no_grad();
            foreach (var target in plan.Targets)
                updates.Add((target.Layer, new LowRankUpdate(plan.Read(target.AKey, dtype, device, 1),
                    plan.Read(target.BKey, dtype, device, target.Scaling))));
            foreach (var saved in plan.Saved)
                replacements.Add((saved.Layer, new WeightReplacement(plan.Read(saved.WeightKey, dtype, device, 1),
                    saved.BiasKey is null ? null : plan.Read(saved.BiasKey, dtype, device, 1))));
        }
        catch
        {
            foreach (var t in updates.SelectMany(u => new[] { u.Item2.A, u.Item2.ScaledB })
                .Concat(replacements.SelectMany(r => new[] { r.Item2.Weight, r.Item2.Bias }))) t?.Dispose();
            throw;
        }
        long bytes = updates.Sum(u => Bytes(u.Item2.A) + Bytes(u.Item2.ScaledB))
            + replacements.Sum(r => Bytes(r.Item2.Weight) + (r.Item2.Bias is { } b ? Bytes(b) : 0));
        var description = new AdapterDescription(Path.GetFullPath(folder), config.PeftType, config.R, config.LoraAlpha, config.UseRslora,
            config.RankPattern.Count > 0, config.TargetModules?.ToJsonString() ?? "null", [.. plan.Targets.Select(t => t.Module)],
            [.. plan.Saved.Select(s => s.Module)], bytes);
        return new PeftAdapter([.. updates], [.. replacements], description);
    }

    static long Bytes(Tensor t) => t.NumberOfElements * t.ElementSize;

    /// <summary>
    /// Sets the adapter's updates and replacements on the base's layers until the returned handle is disposed (use it
    /// in a using around one forward). A layer still holding another adapter's slot is a bug, refused.
    /// </summary>
    public IDisposable Activate()
    {
        if (_updates.Any(u => u.Layer.Update is not null) || _replacements.Any(r => r.Layer.Replacement is not null))
            throw new InvalidOperationException("an adapter is already active on this base module (a forward did not deactivate it)");
        foreach (var (layer, update) in _updates) layer.Update = update;
        foreach (var (layer, replacement) in _replacements) layer.Replacement = replacement;
        return _deactivation;
    }

    sealed class Deactivation(PeftAdapter owner) : IDisposable
    {
        public void Dispose()
        {
            foreach (var (layer, _) in owner._updates) layer.Update = null;
            foreach (var (layer, _) in owner._replacements) layer.Replacement = null;
        }
    }

    /// <summary>Frees the adapter's own tensors; the base module is not touched.</summary>
    public void Dispose()
    {
        _deactivation.Dispose();
        foreach (var (_, u) in _updates) { u.A.Dispose(); u.ScaledB.Dispose(); }
        foreach (var (_, r) in _replacements) { r.Weight.Dispose(); r.Bias?.Dispose(); }
    }
}
