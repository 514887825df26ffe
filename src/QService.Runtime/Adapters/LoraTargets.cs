using System.Text.RegularExpressions;

namespace QService.Runtime.Adapters;

/// <summary>
/// PEFT 0.18's rules for which modules an adapter touches and with what rank and alpha, on full module names such as
/// <c>model.layers.1.self_attn.q_proj</c> (tuners_utils.check_target_module_exists, utils.other.get_pattern_key and
/// _set_trainable). Patterns are .NET regexes read as Python's; the syntax LoRA configs use is the same in both.
/// </summary>
public sealed class LoraTargets(LoraAdapterConfig config)
{
    /// <summary>Whether modules_to_save names the module: PEFT wraps every module whose name ends with an entry (a plain suffix).</summary>
    public bool IsSaved(string module) => config.ModulesToSave.Any(m => module.EndsWith(m, StringComparison.Ordinal));

    /// <summary>
    /// Whether LoRA targets the module. <paramref name="isLinear"/>: whether it is a linear layer that is not the output
    /// projection (what "all-linear" takes). Excluded modules and those inside a modules_to_save entry never are.
    /// </summary>
    public bool IsTarget(string module, bool isLinear)
    {
        if (Excluded(module)) return false;
        if (config.ModulesToSave.Any(m => Regex.IsMatch(module, $@"\A(.*\.)?{m}(\z|\..*)", RegexOptions.Singleline))) return false;
        if (config.AllLinear) return isLinear;
        if (config.TargetRegex is { } regex) return FullMatch(regex, module);
        var list = config.TargetList!;
        if (list.Contains(module)) return true; // a full name is taken as it is, layers_to_transform not applied (as PEFT does)
        return list.Any(t => module.EndsWith("." + t, StringComparison.Ordinal)) && InTransformedLayer(module);
    }

    /// <summary>(r, lora_alpha) of a targeted module: the first rank_pattern / alpha_pattern key matching <c>(.*\.)?(key)$</c>, else r / lora_alpha.</summary>
    public (int R, double Alpha) RankAndAlpha(string module) =>
        (FirstMatch(config.RankPattern, module) ?? config.R, FirstMatch(config.AlphaPattern, module) ?? config.LoraAlpha);

    /// <summary>lora_alpha / r, or lora_alpha / √r with use_rslora.</summary>
    public double Scaling(string module)
    {
        var (r, alpha) = RankAndAlpha(module);
        return config.UseRslora ? alpha / Math.Sqrt(r) : alpha / r;
    }

    static T? FirstMatch<T>(IReadOnlyList<KeyValuePair<string, T>> pattern, string module) where T : struct
    {
        foreach (var (key, value) in pattern)
            if (Regex.IsMatch(module, $@"\A(.*\.)?({key})$", RegexOptions.Singleline)) return value;
        return null;
    }

    bool Excluded(string module) => config.ExcludeRegex is { } regex
        ? FullMatch(regex, module)
        : config.ExcludeList is { } list && (list.Contains(module) || list.Any(e => module.EndsWith("." + e, StringComparison.Ordinal)));

    /// <summary>layers_to_transform: the module's layer index, the number after "&lt;layers_pattern&gt;." (any name when no pattern), is listed.</summary>
    bool InTransformedLayer(string module)
    {
        if (config.LayersToTransform is not { Count: > 0 } layers) return true;
        Match? match = null;
        if (config.LayersPattern is not { Count: > 0 } patterns) match = Regex.Match(module, @"\A.*\.[^.]*\.(\d+)\.", RegexOptions.Singleline);
        else
            foreach (var p in patterns)
                if ((match = Regex.Match(module, $@"\A.*\.{p}\.(\d+)\.", RegexOptions.Singleline)).Success) break;
        return match is { Success: true } && layers.Contains(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    static bool FullMatch(string regex, string module) => Regex.IsMatch(module, $@"\A(?:{regex})\z", RegexOptions.Singleline);
}
