using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Runtime.Loading;

namespace QService.Runtime.Adapters;

/// <summary>
/// The fields of a PEFT 0.18 adapter_config.json that decide a LoRA adapter's forward. Options that change the math in
/// ways the runtime does not implement are refused when read (<see cref="Load"/>), one line naming the field.
/// </summary>
/// <param name="TargetModules">a list of names, one regex (full match), or "all-linear"; as written</param>
/// <param name="TargetRegex">set when target_modules is a string other than "all-linear"</param>
public sealed record LoraAdapterConfig(
    string Path,
    string PeftType,
    int R,
    double LoraAlpha,
    bool UseRslora,
    JsonNode? TargetModules,
    IReadOnlyList<string>? TargetList,
    string? TargetRegex,
    bool AllLinear,
    IReadOnlyList<string>? ExcludeList,
    string? ExcludeRegex,
    IReadOnlyList<KeyValuePair<string, int>> RankPattern,
    IReadOnlyList<KeyValuePair<string, double>> AlphaPattern,
    IReadOnlyList<int>? LayersToTransform,
    IReadOnlyList<string>? LayersPattern,
    IReadOnlyList<string> ModulesToSave,
    bool FanInFanOut,
    bool EnsureWeightTying,
    string? BaseModelNameOrPath)
{
    public const string FileName = "adapter_config.json";

    /// <summary>Reads and checks <c>adapter_config.json</c> in <paramref name="folder"/>.</summary>
    public static LoraAdapterConfig Load(string folder)
    {
        string path = System.IO.Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new CheckpointException($"{folder}: no {FileName} (not a PEFT adapter folder)");
        JsonObject j;
        try
        {
            j = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new CheckpointException($"{path}: empty JSON");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new CheckpointException($"{path}: not a JSON object ({e.Message})", e);
        }
        var read = new ConfigFields(path, j);
        LoraRefusals.Check(read);
        var targets = j["target_modules"];
        var (list, regex, allLinear) = Names(read, "target_modules");
        if (list is null && regex is null && !allLinear)
            throw read.Fail("target_modules", "is missing; PEFT writes the resolved module names there");
        var (excludeList, excludeRegex, _) = Names(read, "exclude_modules");
        var layers = read.IntList("layers_to_transform");
        var layersPattern = read.StringList("layers_pattern");
        if ((regex is not null || allLinear) && (layers is not null || layersPattern is not null))
            throw read.Fail(layers is not null ? "layers_to_transform" : "layers_pattern",
                "cannot be combined with a string target_modules (a regex or \"all-linear\"; PEFT refuses it too)");
        int r = read.Int("r") ?? 8;
        if (r <= 0) throw read.Fail("r", $"is {r}; the rank must be positive");
        return new LoraAdapterConfig(path, read.String("peft_type")!, r, read.Double("lora_alpha") ?? 8, read.Bool("use_rslora") ?? false,
            targets?.DeepClone(), list, regex, allLinear, excludeList, excludeRegex,
            read.Pattern("rank_pattern", n => n.GetValue<int>()), read.Pattern("alpha_pattern", n => n.GetValue<double>()),
            layers, layersPattern, read.StringList("modules_to_save") ?? [], read.Bool("fan_in_fan_out") ?? false,
            read.Bool("ensure_weight_tying") ?? false, read.String("base_model_name_or_path"));
    }

    /// <summary>A module-name field as PEFT takes it: a list of names, one regex, or the "all-linear" shorthand (any case).</summary>
    static (IReadOnlyList<string>? List, string? Regex, bool AllLinear) Names(ConfigFields read, string field) => read.Node(field) switch
    {
        null => (null, null, false),
        JsonValue v when v.TryGetValue(out string? s) =>
            string.Equals(s, "all-linear", StringComparison.OrdinalIgnoreCase) && field == "target_modules" ? (null, null, true) : (null, s, false),
        JsonArray => (read.StringList(field), null, false),
        _ => throw read.Fail(field, "must be a list of module names or one regex string"),
    };
}
