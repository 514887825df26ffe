using QService.Runtime.Loading;

namespace QService.Runtime.Adapters;

/// <summary>
/// The tensor names of a PEFT adapter_model.safetensors, sorted by module: <c>base_model.model.&lt;module&gt;.lora_A.weight</c>
/// and <c>.lora_B.weight</c> (no adapter name in the file), and a modules_to_save copy's <c>base_model.model.&lt;module&gt;.weight</c>
/// (and <c>.bias</c>). Anything else is refused, naming the tensor.
/// </summary>
sealed class AdapterTensors
{
    public const string FileName = "adapter_model.safetensors";
    const string Prefix = "base_model.model.";

    public SafeTensorsFile File { get; }

    /// <summary>Module name → (lora_A key, lora_B key); either may be null when the file lacks it.</summary>
    public Dictionary<string, (string? A, string? B)> LowRank { get; } = new(StringComparer.Ordinal);

    /// <summary>Module name → parameter name (weight, bias) → key.</summary>
    public Dictionary<string, Dictionary<string, string>> Replaced { get; } = new(StringComparer.Ordinal);

    AdapterTensors(SafeTensorsFile file) => File = file;

    public static AdapterTensors Open(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!System.IO.File.Exists(path))
            throw new CheckpointException(System.IO.File.Exists(Path.Combine(folder, "adapter_model.bin"))
                ? $"{folder}: only adapter_model.safetensors is supported, not adapter_model.bin; save the adapter with safe_serialization=True"
                : $"{folder}: no {FileName} next to adapter_config.json");
        var tensors = new AdapterTensors(SafeTensorsFile.Open(path));
        foreach (var key in tensors.File.Tensors.Keys) tensors.Sort(key);
        return tensors;
    }

    void Sort(string key)
    {
        if (!key.StartsWith(Prefix, StringComparison.Ordinal))
            throw new CheckpointException($"{File.Path}: tensor '{key}' does not start with '{Prefix}' (not a PEFT adapter file)");
        string rest = key[Prefix.Length..];
        if (rest.EndsWith(".lora_embedding_A", StringComparison.Ordinal) || rest.EndsWith(".lora_embedding_B", StringComparison.Ordinal))
            throw new CheckpointException($"{File.Path}: tensor '{key}': LoRA on an embedding is not supported " +
                "(put the embedding in modules_to_save, or merge the adapter into the base with PEFT)");
        foreach (var (suffix, isA) in new[] { (".lora_A.weight", true), (".lora_B.weight", false) })
            if (rest.EndsWith(suffix, StringComparison.Ordinal))
            {
                string module = rest[..^suffix.Length];
                var (a, b) = LowRank.GetValueOrDefault(module);
                LowRank[module] = isA ? (key, b) : (a, key);
                return;
            }
        int dot = rest.LastIndexOf('.');
        string parameter = dot < 0 ? "" : rest[(dot + 1)..];
        if (parameter is not ("weight" or "bias"))
            throw new CheckpointException($"{File.Path}: tensor '{key}' is neither a lora_A/lora_B weight nor a modules_to_save weight or bias");
        string owner = rest[..dot];
        if (!Replaced.TryGetValue(owner, out var parameters)) Replaced[owner] = parameters = new(StringComparer.Ordinal);
        parameters[parameter] = key;
    }

    /// <summary>Checks a tensor's shape against what the base module needs; the message names both.</summary>
    public void CheckShape(string key, long[] expected, string module, string why)
    {
        var shape = File.Tensors[key].Shape;
        if (!shape.SequenceEqual(expected))
            throw new CheckpointException($"{File.Path}: tensor '{key}' has shape [{string.Join(", ", shape)}], " +
                $"the base module '{module}' {why} expects [{string.Join(", ", expected)}]");
    }
}
