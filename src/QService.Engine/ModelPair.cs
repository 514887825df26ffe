using QService.Runtime.Loading;
using System.Text.Json;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;
using QService.Runtime.Torch;

namespace QService.Engine;

/// <summary>
/// The policy, its reference and their shared tokenizer, loaded once. Construction refuses a pair whose
/// vocabularies differ: their log-probabilities would not be over the same tokens.
/// </summary>
public sealed class ModelPair : IDisposable
{
    /// <summary>Written by the demo trainer next to the policy; records the beta it was trained with.</summary>
    public const string PairMetadataFile = "qservice-pair.json";
    const double FallbackBeta = 0.1;

    public CausalLanguageModel Policy { get; }
    public CausalLanguageModel Reference { get; }
    /// <summary>Null when neither the policy folder nor Models:TokenizerPath has a tokenizer.json: token ids only.</summary>
    public HfTokenizer? Tokenizer { get; }
    public double DefaultBeta { get; }
    /// <summary>Most characters one token covers (the vocabulary's longest surface, at least 1); 0 without a tokenizer.</summary>
    public int LongestTokenChars { get; }
    /// <summary>Tokens of prompt + response the models accept (the smaller max_position_embeddings).</summary>
    public int MaxContext => Math.Min(Policy.Config.MaxPositionEmbeddings, Reference.Config.MaxPositionEmbeddings);

    ModelPair(CausalLanguageModel policy, CausalLanguageModel reference, HfTokenizer? tokenizer, double beta)
    {
        Policy = policy;
        Reference = reference;
        Tokenizer = tokenizer;
        DefaultBeta = beta;
        LongestTokenChars = tokenizer is null ? 0 : Enumerable.Range(0, tokenizer.VocabSize).Max(id => Math.Max(1, tokenizer.TokenSurface(id).Length));
    }

    /// <summary>
    /// Loads the configured pair, or the bundled demo pair (<paramref name="defaultPairFolder"/>/policy and
    /// /reference) when no model folders are configured.
    /// </summary>
    /// <param name="progress">told, as the weights are read, which model and how far: (role, bytes read, bytes in all)</param>
    public static ModelPair Load(ModelOptions options, string defaultPairFolder, Action<string, long, long>? progress = null)
    {
        // Process-wide CPU fixes first: they must precede the first matmul.
        TorchEnvironment.Initialize(new CpuSpeedOptions(options.MklVendorOverride, options.KeepFreedMemory));
        TorchEnvironment.ApplyThreads(options.Threads);
        RefuseEmulatedBFloat16(options);
        if (string.IsNullOrWhiteSpace(options.PolicyPath) != string.IsNullOrWhiteSpace(options.ReferencePath))
            throw new InvalidOperationException("Set both Models:PolicyPath and Models:ReferencePath, or neither (for the bundled demo pair).");
        bool useDefault = string.IsNullOrWhiteSpace(options.PolicyPath);
        // A folder, or a hub id (org/name[@revision]) found in the local HuggingFace cache.
        string policyPath = useDefault ? Path.Combine(defaultPairFolder, "policy") : HubCache.Resolve(options.PolicyPath!);
        string referencePath = useDefault ? Path.Combine(defaultPairFolder, "reference") : HubCache.Resolve(options.ReferencePath!);

        var load = new ModelLoadOptions(options.Device, options.Dtype);
        string tokenizerPath = options.TokenizerPath is { } given ? HubCache.Resolve(given) : policyPath;
        var tokenizer = options.TokenizerPath != null || File.Exists(Path.Combine(tokenizerPath, "tokenizer.json"))
            ? HfTokenizer.Load(tokenizerPath)
            : null;
        CausalLanguageModel? policy = null, reference = null;
        try
        {
            policy = CausalLanguageModel.Load(policyPath, load, (done, total) => progress?.Invoke("policy", done, total));
            reference = CausalLanguageModel.Load(referencePath, load, (done, total) => progress?.Invoke("reference", done, total));
            CheckCompatible(policy, reference, tokenizer, policyPath, referencePath, ownTokenizerPath: options.TokenizerPath is null);
            return new ModelPair(policy, reference, tokenizer, options.Beta ?? ReadPairBeta(policyPath) ?? FallbackBeta);
        }
        catch
        {
            policy?.Dispose();
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
        Policy.Dispose();
        Reference.Dispose();
        Tokenizer?.Dispose();
    }

    /// <summary>What the engine validates requests against and reports.</summary>
    public ServedModels Describe() => new(
        new ServedPair(Policy.Name, Reference.Name, Policy.Config.Architecture, Reference.Config.Architecture, Policy.Config.VocabSize,
            MaxContext, DefaultBeta, TorchEnvironment.DtypeName(Policy.Dtype), Policy.Device.ToString(), BosTokenId, EosTokenId),
        Tokenizer, LongestTokenChars);

    /// <summary>BOS: the tokenizer's, else config.json's bos_token_id.</summary>
    public int? BosTokenId => Tokenizer?.BosTokenId ?? Policy.Config.BosTokenId;

    /// <summary>EOS: the tokenizer's, else config.json's (first) eos_token_id.</summary>
    public int? EosTokenId => Tokenizer?.EosTokenId ?? (Policy.Config.EosTokenIds.Length > 0 ? Policy.Config.EosTokenIds[0] : null);
}
