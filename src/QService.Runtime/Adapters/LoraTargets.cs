using System.Text.RegularExpressions;
using QService.Runtime.Loading;

namespace QService.Runtime.Adapters;

/// <summary>
/// PEFT 0.18's rules for which modules an adapter touches and with what rank and alpha, on full module names such as
/// <c>model.layers.1.self_attn.q_proj</c> (tuners_utils.check_target_module_exists, utils.other.get_pattern_key and
/// _set_trainable). Patterns are .NET regexes read as Python's; the syntax LoRA configs use is the same in both.
/// </summary>
public sealed class LoraTargets
{
    const RegexOptions Python = RegexOptions.Singleline | RegexOptions.CultureInvariant;
    readonly LoraAdapterConfig _config;
    readonly Regex? _target, _exclude;
    readonly Regex[] _insideSaved;
    readonly (Regex Key, int R)[] _ranks;
    readonly (Regex Key, double Alpha)[] _alphas;
    readonly Regex[] _layerIndex;

    /// <summary>Compiles the config's patterns once; one that is no valid regex is an error naming its field.</summary>
    public LoraTargets(LoraAdapterConfig config)
    {
        _config = config;
        _target = config.TargetRegex is { } t ? Compile("target_modules", $@"\A(?:{t})\z") : null;
        _exclude = config.ExcludeRegex is { } e ? Compile("exclude_modules", $@"\A(?:{e})\z") : null;
        _insideSaved = [.. config.ModulesToSave.Select(m => Compile("modules_to_save", $@"\A(.*\.)?{m}(\z|\..*)"))];
        _ranks = [.. config.RankPattern.Select(p => (Compile("rank_pattern", $@"\A(.*\.)?({p.Key})$"), p.Value))];
        _alphas = [.. config.AlphaPattern.Select(p => (Compile("alpha_pattern", $@"\A(.*\.)?({p.Key})$"), p.Value))];
        // The layer index: the number after "<layers_pattern>." (after any name without a pattern; greedy, so the last such number).
        _layerIndex = config.LayersPattern is { Count: > 0 } patterns
            ? [.. patterns.Select(p => Compile("layers_pattern", $@"\A.*\.{p}\.(\d+)\."))]
            : [Compile("layers_pattern", @"\A.*\.[^.]*\.(\d+)\.")];
    }

    Regex Compile(string field, string pattern)
    {
        try { return new Regex(pattern, Python); }
        catch (ArgumentException e) { throw new CheckpointException($"{_config.Path}: {field} holds a pattern that is no valid regex ({e.Message})", e); }
    }

    /// <summary>Whether modules_to_save names the module: PEFT wraps every module whose name ends with an entry (a plain suffix).</summary>
    public bool IsSaved(string module) => _config.ModulesToSave.Any(m => module.EndsWith(m, StringComparison.Ordinal));

    /// <summary>
    /// Whether LoRA targets the module. <paramref name="isLinear"/>: whether it is a linear layer that is not the output
    /// projection (what "all-linear" takes). Excluded modules and those inside a modules_to_save entry never are.
    /// </summary>
    public bool IsTarget(string module, bool isLinear)
    {
        if (Excluded(module)) return false;
        if (_insideSaved.Any(m => m.IsMatch(module))) return false;
        if (_config.AllLinear) return isLinear;
        if (_target is not null) return _target.IsMatch(module);
        var list = _config.TargetList!;
        if (list.Contains(module)) return true; // a full name is taken as it is, layers_to_transform not applied (as PEFT does)
        return list.Any(t => module.EndsWith("." + t, StringComparison.Ordinal)) && InTransformedLayer(module);
    }

    /// <summary>(r, lora_alpha) of a targeted module: the first rank_pattern / alpha_pattern key matching <c>(.*\.)?(key)$</c>, else r / lora_alpha.</summary>
    public (int R, double Alpha) RankAndAlpha(string module) =>
        (FirstMatch(_ranks, module) ?? _config.R, FirstMatch(_alphas, module) ?? _config.LoraAlpha);

    /// <summary>lora_alpha / r, or lora_alpha / √r with use_rslora.</summary>
    public double Scaling(string module)
    {
        var (r, alpha) = RankAndAlpha(module);
        return _config.UseRslora ? alpha / Math.Sqrt(r) : alpha / r;
    }

    static T? FirstMatch<T>((Regex Key, T Value)[] pattern, string module) where T : struct
    {
        foreach (var (key, value) in pattern)
            if (key.IsMatch(module)) return value;
        return null;
    }

    bool Excluded(string module) => _exclude is not null
        ? _exclude.IsMatch(module)
        : _config.ExcludeList is { } list && (list.Contains(module) || list.Any(e => module.EndsWith("." + e, StringComparison.Ordinal)));

    /// <summary>layers_to_transform: the module's layer index (the first layers_pattern that finds one) is listed.</summary>
    bool InTransformedLayer(string module)
    {
        if (_config.LayersToTransform is not { Count: > 0 } layers) return true;
        var match = _layerIndex.Select(r => r.Match(module)).FirstOrDefault(m => m.Success);
        return match is not null && layers.Contains(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }
}
