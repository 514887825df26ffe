using QService.Runtime.Loading;
using System.Text.Json;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;
using QService.Runtime.Torch;

namespace QService.Engine;

/// <summary>
/// The served policies (one of a plain pair, or several named ones), the reference they share and their tokenizer,
/// loaded once. A policy is a full checkpoint or a LoRA adapter over the reference (one copy of the base in memory).
/// Loading refuses models whose vocabularies differ: their log-probabilities would not be over the same tokens.
/// </summary>
public sealed class ModelPair : IDisposable
{
    /// <summary>Written by the demo trainer next to the policy; records the beta it was trained with.</summary>
    public const string PairMetadataFile = "qservice-pair.json";
    const double FallbackBeta = 0.1;

    /// <summary>The served policies in order; the first is the default.</summary>
    public IReadOnlyList<NamedPolicy> Policies { get; }
    /// <summary>The default (first) policy.</summary>
    public CausalLanguageModel Policy => Policies[0].Model;
    public CausalLanguageModel Reference { get; }
    /// <summary>Null when neither the policy folder nor Models:TokenizerPath has a tokenizer.json: token ids only.</summary>
    public HfTokenizer? Tokenizer { get; }
    public double DefaultBeta { get; }
    /// <summary>Most characters one token covers (the vocabulary's longest surface, at least 1); 0 without a tokenizer.</summary>
    public int LongestTokenChars { get; }
    /// <summary>Tokens of prompt + response every model accepts (the smallest max_position_embeddings).</summary>
    public int MaxContext => Policies.Select(p => p.Model).Append(Reference).Min(m => m.Config.MaxPositionEmbeddings);

    ModelPair(IReadOnlyList<NamedPolicy> policies, CausalLanguageModel reference, HfTokenizer? tokenizer, double beta)
    {
        Policies = policies;
        Reference = reference;
        Tokenizer = tokenizer;
        DefaultBeta = beta;
        LongestTokenChars = tokenizer is null ? 0 : Enumerable.Range(0, tokenizer.VocabSize).Max(id => Math.Max(1, tokenizer.TokenSurface(id).Length));
    }

    /// <summary>
    /// Loads the configured policies and reference, or the bundled demo pair (<paramref name="defaultPairFolder"/>/policy and
    /// /reference) when no model folders are configured.
    /// </summary>
    /// <param name="progress">told, as the weights are read, which model and how far: (role, bytes read, bytes in all)</param>
    public static ModelPair Load(ModelOptions options, string defaultPairFolder, Action<string, long, long>? progress = null)
    {
        // Process-wide CPU fixes first: they must precede the first matmul.
        TorchEnvironment.Initialize(new CpuSpeedOptions(options.MklVendorOverride, options.KeepFreedMemory));
        TorchEnvironment.ApplyThreads(options.Threads);
        RefuseEmulatedBFloat16(options);
        var sources = PolicySources.Of(options, defaultPairFolder);
        string referencePath = sources.ReferencePath;
        string firstPolicyPath = sources.Policies[0].Path;

        var load = new ModelLoadOptions(options.Device, options.Dtype);
        string tokenizerPath = options.TokenizerPath is { } given ? HubCache.Resolve(given) : PolicySources.TokenizerFolder(firstPolicyPath, referencePath);
        var tokenizer = options.TokenizerPath != null || File.Exists(Path.Combine(tokenizerPath, "tokenizer.json"))
            ? HfTokenizer.Load(tokenizerPath)
            : null;
        CausalLanguageModel? reference = null;
        var policies = new List<NamedPolicy>();
        try
        {
            reference = CausalLanguageModel.Load(referencePath, load, (done, total) => progress?.Invoke("reference", done, total));
            foreach (var (name, path) in sources.Policies)
            {
                string role = sources.Policies.Count == 1 ? "policy" : $"policy {name}";
                var model = PolicySources.LoadPolicy(path, referencePath, reference, load, (done, total) => progress?.Invoke(role, done, total));
                policies.Add(new NamedPolicy(name ?? model.Name, model));
                CheckCompatible(model, reference, tokenizer, path, referencePath, ownTokenizerPath: options.TokenizerPath is null);
            }
            return new ModelPair(policies, reference, tokenizer, options.Beta ?? ReadPairBeta(firstPolicyPath) ?? FallbackBeta);
        }
        catch
        {
            foreach (var policy in policies) policy.Model.Dispose();
            reference?.Dispose();
            tokenizer?.Dispose();
            throw;
        }
    }

    static void RefuseEmulatedBFloat16(ModelOptions options)
    {
        var dtype = TorchEnvironment.ParseDtype(options.Dtype);
        if (dtype != TorchSharp.torch.ScalarType.BFloat16) return; // no device selection (and no CUDA probe) otherwise
        var (device, _) = TorchEnvironment.SelectDevice(options.Device);
        if (EmulatedBFloat16(dtype, device.type, CpuFeatures.Here) is string problem) throw new InvalidOperationException(problem);
    }

    /// <summary>
    /// bfloat16 on a CPU without avx512_bf16 or AMX runs through LibTorch's fallback kernels: its matmuls measured
    /// 40x slower than float32's on an AVX2-only AMD EPYC (bench-forward --dtype bfloat16), so the service would
    /// look hung. The reason and what to use instead; null when the dtype runs natively.
    /// </summary>
    public static string? EmulatedBFloat16(TorchSharp.torch.ScalarType dtype, TorchSharp.DeviceType device, CpuFeatures cpu) =>
        dtype == TorchSharp.torch.ScalarType.BFloat16 && device == TorchSharp.DeviceType.CPU && !cpu.NativeBFloat16
            ? $"Models:Dtype is bfloat16, but this CPU ({cpu.Describe()}) has no native bfloat16 (avx512_bf16 or amx_bf16): LibTorch would " +
              "emulate it, about 40x slower than float32 in matmuls (bench-forward --dtype bfloat16 measures it); use --dtype float32 on this machine"
            : null;

    /// <param name="ownTokenizerPath">true when the tokenizer came from the policy folder, so the reference's own one is compared</param>
    static void CheckCompatible(CausalLanguageModel policy, CausalLanguageModel reference, HfTokenizer? tokenizer,
        string policyPath, string referencePath, bool ownTokenizerPath)
    {
        if (policy.Config.VocabSize != reference.Config.VocabSize)
            throw new InvalidOperationException(
                $"The policy ({policyPath}) has vocab_size {policy.Config.VocabSize} but the reference ({referencePath}) has {reference.Config.VocabSize}: " +
                "they must share one tokenizer.");
        if (tokenizer is null) return;
        if (tokenizer.VocabSize > policy.Config.VocabSize)
            throw new InvalidOperationException(
                $"The tokenizer has {tokenizer.VocabSize} tokens but the models only {policy.Config.VocabSize}: wrong tokenizer for these models?");
        if (ownTokenizerPath && File.Exists(Path.Combine(referencePath, "tokenizer.json")))
        {
            using var other = HfTokenizer.Load(referencePath);
            if (other.VocabSize != tokenizer.VocabSize)
                throw new InvalidOperationException($"The policy's tokenizer has {tokenizer.VocabSize} tokens, the reference's {other.VocabSize}: " +
                    "they must share one tokenizer.");
            for (int id = 0; id < tokenizer.VocabSize; id++)
                if (tokenizer.TokenText(id) != other.TokenText(id))
                    throw new InvalidOperationException(
                        $"The policy's and the reference's tokenizers differ at id {id} ('{tokenizer.TokenText(id)}' vs '{other.TokenText(id)}'): " +
                        "they must share one tokenizer.");
        }
    }

    static double? ReadPairBeta(string policyPath)
    {
        string path = Path.Combine(policyPath, PairMetadataFile);
        if (!File.Exists(path)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.TryGetProperty("beta", out var beta) ? beta.GetDouble() : null;
    }

    public void Dispose()
    {
        // Adapter policies share the reference's module: they free only their own tensors, before it.
        foreach (var policy in Policies) policy.Model.Dispose();
        Reference.Dispose();
        Tokenizer?.Dispose();
    }

    /// <summary>What the engine validates requests against and reports.</summary>
    public ServedModels Describe() => new(
        new ServedPair(Policies[0].Name, Reference.Name, Policy.Config.Architecture, Reference.Config.Architecture, Policy.Config.VocabSize,
            MaxContext, DefaultBeta, TorchEnvironment.DtypeName(Policy.Dtype), Policy.Device.ToString(), BosTokenId, EosTokenId,
            [.. Policies.Select(p => new ServedPolicy(p.Name, p.Model.Name, p.Model.Config.Architecture, PolicySources.AdapterSummary(p.Model)))]),
        Tokenizer, LongestTokenChars);

    /// <summary>BOS: the tokenizer's, else config.json's bos_token_id.</summary>
    public int? BosTokenId => Tokenizer?.BosTokenId ?? Policy.Config.BosTokenId;

    /// <summary>EOS: the tokenizer's, else config.json's (first) eos_token_id (the default policy's).</summary>
    public int? EosTokenId => Tokenizer?.EosTokenId ?? (Policy.Config.EosTokenIds.Length > 0 ? Policy.Config.EosTokenIds[0] : null);
}

/// <summary>A served policy: the name requests use and its model.</summary>
public sealed record NamedPolicy(string Name, CausalLanguageModel Model);
