using QService.Runtime.Loading;
using QService.Runtime.Scoring;

namespace QService.Engine;

/// <summary>
/// Where the served models come from: the policies (PolicyPath, or the named Policies, or the demo pair's), the
/// reference (ReferencePath, else the adapters' base), and how a policy folder loads (full checkpoint or adapter).
/// </summary>
internal static class PolicySources
{
    const string AdapterConfigFile = "adapter_config.json";

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

    public static bool IsAdapter(string folder) => File.Exists(Path.Combine(folder, AdapterConfigFile));

    /// <summary>Without a reference given, the policies must be adapters: the reference is the base they were trained on.</summary>
    static string AdapterBase(IReadOnlyList<(string? Name, string Path)> policies)
    {
        var full = policies.FirstOrDefault(p => !IsAdapter(p.Path));
        if (full.Path != null)
            throw new InvalidOperationException($"Models:ReferencePath is not set and the policy {full.Path} is a full checkpoint, not a LoRA adapter: " +
                "set Models:ReferencePath (--reference DIR) to the model it was trained from.");
        throw new InvalidOperationException("LoRA adapter policies are not supported yet");
    }

    /// <summary>The tokenizer's folder: the policy's when it has one, else (an adapter without its own) the reference's.</summary>
    public static string TokenizerFolder(string policyPath, string referencePath) =>
        File.Exists(Path.Combine(policyPath, "tokenizer.json")) || !IsAdapter(policyPath) ? policyPath : referencePath;

    /// <summary>A full checkpoint loads on its own; an adapter attaches to the reference, sharing its weights.</summary>
    public static CausalLanguageModel LoadPolicy(string path, CausalLanguageModel reference, ModelLoadOptions load, Action<long, long> progress)
    {
        if (IsAdapter(path)) throw new InvalidOperationException("LoRA adapter policies are not supported yet");
        return CausalLanguageModel.Load(path, load, progress);
    }

    /// <summary>For GetModelInfo: what the adapter is (rank, targets); null for a full checkpoint.</summary>
    public static ServedAdapter? AdapterSummary(CausalLanguageModel model) => null;
}
