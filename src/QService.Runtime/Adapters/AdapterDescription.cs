using System.Globalization;

namespace QService.Runtime.Adapters;

/// <summary>What a loaded PEFT adapter is, for logs and GetModelInfo.</summary>
/// <param name="TargetModules">target_modules as written in adapter_config.json (JSON text)</param>
/// <param name="Modules">the modules that get a LoRA update, full names in the base's order</param>
/// <param name="ModulesToSave">the modules whose weights the adapter replaces, full names</param>
/// <param name="Bytes">the adapter's own tensor bytes (A, scaled B, replacements); the base is shared, not counted</param>
public sealed record AdapterDescription(string Folder, string PeftType, int R, double LoraAlpha, bool UseRslora, bool RankPattern,
    string TargetModules, IReadOnlyList<string> Modules, IReadOnlyList<string> ModulesToSave, long Bytes)
{
    public int ModuleCount => Modules.Count;

    /// <summary>E.g. "LoRA r=16 alpha=32 rslora=false on 210 modules (q_proj, k_proj, ...), 8.4 MB".</summary>
    public string Describe()
    {
        var kinds = Modules.Select(m => m[(m.LastIndexOf('.') + 1)..]).Distinct().ToArray();
        string text = string.Create(CultureInfo.InvariantCulture,
            $"LoRA r={R}{(RankPattern ? " (+rank_pattern)" : "")} alpha={LoraAlpha} rslora={(UseRslora ? "true" : "false")} " +
            $"on {ModuleCount} module{(ModuleCount == 1 ? "" : "s")} ({string.Join(", ", kinds)})");
        if (ModulesToSave.Count > 0) text += $", replacing {string.Join(", ", ModulesToSave)}";
        return text + string.Create(CultureInfo.InvariantCulture, $", {Bytes / 1e6:0.0##} MB");
    }
}
