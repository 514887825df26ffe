using QService.Runtime.Adapters;
using QService.Runtime.Loading;
using QService.Runtime.Models;
using QService.Runtime.Scoring;

namespace QService.Engine;

/// <summary>
/// Where the served models come from: the policies (PolicyPath, or the named Policies, or the demo pair's), the
/// reference (ReferencePath, else the adapters' base), and how a policy folder loads (full checkpoint or adapter).
/// </summary>
internal static class PolicySources
{
    /// <summary>Policies as (name, folder): a null name is the model's folder name (the plain pair's one policy).</summary>
    public sealed record Sources(IReadOnlyList<(string? Name, string Path)> Policies, string ReferencePath);

    public static Sources Of(ModelOptions options, string defaultPairFolder)
    {
        bool named = options.Policies.Count > 0;
        bool hasPolicy = named || !string.IsNullOrWhiteSpace(options.PolicyPath);
        bool hasReference = !string.IsNullOrWhiteSpace(options.ReferencePath);
        if (!hasPolicy && !hasReference)
            return new([(null, Path.Combine(defaultPairFolder, "policy"))], Path.Combine(defaultPairFolder, "reference"));
        if (!hasPolicy)
            throw new InvalidOperationException("Models:ReferencePath is set but no policy is: set Models:PolicyPath (--policy DIR), or " +
                "Models:Policies (--policy NAME=DIR), or neither (for the bundled demo pair).");
        // A folder, or a hub id (org/name[@revision]) found in the local HuggingFace cache.
        IReadOnlyList<(string? Name, string Path)> policies = named
            ? [.. options.Policies.Select(p => ((string?)p.Name, HubCache.Resolve(p.Path)))]
            : [(null, HubCache.Resolve(options.PolicyPath!))];
        string reference = hasReference ? HubCache.Resolve(options.ReferencePath!) : AdapterBase(policies);
        return new(policies, reference);
    }

    public static bool IsAdapter(string folder) => PeftAdapter.IsAdapterFolder(folder);

    /// <summary>Without a reference given, the policies must be adapters over one base: the reference is that base.</summary>
    static string AdapterBase(IReadOnlyList<(string? Name, string Path)> policies)
    {
        var full = policies.FirstOrDefault(p => !IsAdapter(p.Path));
        if (full.Path != null)
            throw new InvalidOperationException($"Models:ReferencePath is not set and the policy {full.Path} is a full checkpoint, not a LoRA adapter: " +
                "set Models:ReferencePath (--reference DIR) to the model it was trained from.");
        var bases = policies.Select(p => (p.Path, Base: ResolvedBase(p.Path))).ToList();
        if (bases.Select(b => b.Base).Distinct().Count() > 1)
            throw new InvalidOperationException($"Models:ReferencePath is not set and the adapters have different bases ({string.Join("; ",
                bases.Select(b => $"{b.Path} over {b.Base}"))}): set Models:ReferencePath (--reference DIR) to the one they share.");
        return bases[0].Base;
    }

    /// <summary>An adapter's base_model_name_or_path as a local folder: a path (absolute, or relative to the adapter), else a hub id in the cache.</summary>
    static string ResolvedBase(string adapterFolder)
    {
        if (PeftAdapter.LocalBaseFolder(adapterFolder) is { } local) return Path.GetFullPath(local);
        string written = PeftAdapter.BaseModelPath(adapterFolder)
            ?? throw new InvalidOperationException($"{adapterFolder}: adapter_config.json has no base_model_name_or_path; set Models:ReferencePath " +
                "(--reference DIR) to the adapter's base");
        return HubCache.Resolve(written);
    }

    /// <summary>
    /// A reference given next to an adapter must be the adapter's base, shape for shape: when base_model_name_or_path names a
    /// local model, their configs must agree on every size (the adapter's own tensors are checked against the reference on load).
    /// </summary>
    static void CheckAdapterBase(string adapterFolder, CausalLanguageModel reference)
    {
        string? written = PeftAdapter.BaseModelPath(adapterFolder);
        string? local = PeftAdapter.LocalBaseFolder(adapterFolder) ?? (written is null ? null : TryResolve(written));
        if (local is null || !File.Exists(Path.Combine(local, "config.json"))) return;
        var (named, served) = (ModelConfig.Load(local), reference.Config);
        (string Field, object Named, object Served)[] sizes =
        [
            ("architectures", named.Architecture, served.Architecture), ("hidden_size", named.HiddenSize, served.HiddenSize),
            ("num_hidden_layers", named.NumHiddenLayers, served.NumHiddenLayers), ("intermediate_size", named.IntermediateSize, served.IntermediateSize),
            ("num_attention_heads", named.NumAttentionHeads, served.NumAttentionHeads),
            ("num_key_value_heads", named.NumKeyValueHeads, served.NumKeyValueHeads), ("vocab_size", named.VocabSize, served.VocabSize),
        ];
        foreach (var (field, a, b) in sizes)
            if (!a.Equals(b))
                throw new InvalidOperationException($"{adapterFolder}: the adapter's base {written} has {field} {a}, but the reference " +
                    $"{reference.Name} has {b}: the adapter was not trained on this reference");
    }

    static string? TryResolve(string pathOrId)
    {
        try { return HubCache.Resolve(pathOrId); }
        catch (Exception e) when (e is CheckpointException or InvalidOperationException or ArgumentException or IOException) { return null; }
    }

    /// <summary>The tokenizer's folder: the policy's when it has one, else (an adapter without its own) the reference's.</summary>
    public static string TokenizerFolder(string policyPath, string referencePath) =>
        File.Exists(Path.Combine(policyPath, "tokenizer.json")) || !IsAdapter(policyPath) ? policyPath : referencePath;

    /// <summary>
    /// A full checkpoint loads on its own, unless it is the reference's own folder (then it runs the reference's weights: one
    /// copy); an adapter attaches to the reference, sharing its weights.
    /// </summary>
    public static CausalLanguageModel LoadPolicy(string path, string referencePath, CausalLanguageModel reference, ModelLoadOptions load,
        Action<long, long> progress)
    {
        if (IsAdapter(path))
        {
            CheckAdapterBase(path, reference);
            return CausalLanguageModel.LoadAdapter(reference, path);
        }
        if (SameFolder(path, referencePath)) return CausalLanguageModel.Share(reference, reference.Name);
        return CausalLanguageModel.Load(path, load, progress);
    }

    static bool SameFolder(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd('/'), Path.GetFullPath(b).TrimEnd('/'), StringComparison.Ordinal);

    /// <summary>For GetModelInfo: what the adapter is (rank, targets); null for a full checkpoint.</summary>
    public static ServedAdapter? AdapterSummary(CausalLanguageModel model) => model.Adapter is not { } a ? null
        : new ServedAdapter(a.PeftType, a.R, a.LoraAlpha, a.UseRslora, TargetsAsWritten(a.TargetModules), a.ModuleCount, a.ModulesToSave, a.Describe());

    /// <summary>target_modules as written (JSON: a list of names, or one regex or "all-linear") as a list of strings.</summary>
    static IReadOnlyList<string> TargetsAsWritten(string json)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json);
        return node is System.Text.Json.Nodes.JsonArray list ? [.. list.Select(n => n?.GetValue<string>() ?? "")] : [node?.GetValue<string>() ?? ""];
    }
}
