using System.Text.Json;
using QService.Runtime.Models;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;

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
    /// <summary>Tokens of prompt + response the models accept (the smaller max_position_embeddings).</summary>
    public int MaxContext => Math.Min(Policy.Config.MaxPositionEmbeddings, Reference.Config.MaxPositionEmbeddings);

    ModelPair(CausalLanguageModel policy, CausalLanguageModel reference, HfTokenizer? tokenizer, double beta)
    {
        Policy = policy;
        Reference = reference;
        Tokenizer = tokenizer;
        DefaultBeta = beta;
    }

    public static ModelPair Load(ModelOptions options, string defaultTokenizerPath)
    {
        if (options.Threads > 0) TorchSharp.torch.set_num_threads(options.Threads);
        if (string.IsNullOrWhiteSpace(options.PolicyPath) != string.IsNullOrWhiteSpace(options.ReferencePath))
            throw new InvalidOperationException("Set both Models:PolicyPath and Models:ReferencePath, or neither (for the bundled default pair).");
        if (string.IsNullOrWhiteSpace(options.PolicyPath))
            return BuiltInDefault(options, options.TokenizerPath ?? defaultTokenizerPath);

        var load = new ModelLoadOptions(options.Device, options.Dtype);
        string tokenizerPath = options.TokenizerPath ?? options.PolicyPath!;
        var tokenizer = options.TokenizerPath != null || File.Exists(Path.Combine(tokenizerPath, "tokenizer.json"))
            ? HfTokenizer.Load(tokenizerPath)
            : null;
        var policy = CausalLanguageModel.Load(options.PolicyPath!, load);
        var reference = CausalLanguageModel.Load(options.ReferencePath!, load);
        try
        {
            CheckCompatible(policy, reference, tokenizer, options);
            return new ModelPair(policy, reference, tokenizer, options.Beta ?? ReadPairBeta(options.PolicyPath!) ?? FallbackBeta);
        }
        catch
        {
            policy.Dispose();
            reference.Dispose();
            tokenizer?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Until trained demo models ship, the default is a small random Llama pair built deterministically
    /// (reference seed 1, policy seed 2) over a real tokenizer, so text input works from the first run.
    /// Its credits are noise, but every code path is the real one.
    /// </summary>
    static ModelPair BuiltInDefault(ModelOptions options, string tokenizerPath)
    {
        var tokenizer = HfTokenizer.Load(tokenizerPath);
        var config = new ModelConfig
        {
            Architecture = "LlamaForCausalLM", ModelType = "llama", VocabSize = tokenizer.VocabSize, HiddenSize = 64,
            NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 16, IntermediateSize = 128,
            MaxPositionEmbeddings = 1024, NormEps = 1e-5,
        };
        var load = new ModelLoadOptions(options.Device, options.Dtype);
        var reference = CausalLanguageModel.CreateRandom(config, seed: 1, load, name: "default-random-reference");
        var policy = CausalLanguageModel.CreateRandom(config, seed: 2, load, name: "default-random-policy");
        return new ModelPair(policy, reference, tokenizer, options.Beta ?? FallbackBeta);
    }

    static void CheckCompatible(CausalLanguageModel policy, CausalLanguageModel reference, HfTokenizer? tokenizer, ModelOptions options)
    {
        if (policy.Config.VocabSize != reference.Config.VocabSize)
            throw new InvalidOperationException(
                $"The policy ({options.PolicyPath}) has vocab_size {policy.Config.VocabSize} but the reference ({options.ReferencePath}) has {reference.Config.VocabSize}: they must share one tokenizer.");
        if (tokenizer is null) return;
        if (tokenizer.VocabSize > policy.Config.VocabSize)
            throw new InvalidOperationException(
                $"The tokenizer has {tokenizer.VocabSize} tokens but the models only {policy.Config.VocabSize}: wrong tokenizer for these models?");
        string referenceTokenizer = Path.Combine(options.ReferencePath!, "tokenizer.json");
        if (options.TokenizerPath is null && File.Exists(referenceTokenizer))
        {
            using var other = HfTokenizer.Load(options.ReferencePath!);
            if (other.VocabSize != tokenizer.VocabSize)
                throw new InvalidOperationException($"The policy's tokenizer has {tokenizer.VocabSize} tokens, the reference's {other.VocabSize}: they must share one tokenizer.");
            for (int id = 0; id < tokenizer.VocabSize; id++)
                if (tokenizer.TokenText(id) != other.TokenText(id))
                    throw new InvalidOperationException(
                        $"The policy's and the reference's tokenizers differ at id {id} ('{tokenizer.TokenText(id)}' vs '{other.TokenText(id)}'): they must share one tokenizer.");
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

    /// <summary>BOS: the tokenizer's, else config.json's bos_token_id.</summary>
    public int? BosTokenId => Tokenizer?.BosTokenId ?? Policy.Config.BosTokenId;

    /// <summary>EOS: the tokenizer's, else config.json's (first) eos_token_id.</summary>
    public int? EosTokenId => Tokenizer?.EosTokenId ?? (Policy.Config.EosTokenIds.Length > 0 ? Policy.Config.EosTokenIds[0] : null);
}
