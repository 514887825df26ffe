using QService.Runtime.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>
/// What every architecture provides: token ids → final hidden states (optionally extending a KV cache),
/// and hidden states → vocabulary logits. Scoring (log-softmax, gathering) is built on these two in
/// <see cref="QService.Runtime.Scoring.CausalLanguageModel"/>.
/// </summary>
public abstract class CausalLm : nn.Module
{
    public ModelConfig Config { get; }

    protected CausalLm(string name, ModelConfig config) : base(name) => Config = config;

    /// <summary>ids: [batch, new] int64 → hidden: [batch, new, hidden]. With a cache, positions continue after its past.</summary>
    public abstract Tensor Hidden(Tensor ids, IAttentionCache? cache);

    /// <summary>hidden: [..., hidden] → logits [..., vocab] in the compute dtype.</summary>
    public abstract Tensor Logits(Tensor hidden);

    /// <summary>The checkpoint key for a parameter name of this module (e.g. GPT-2 stores keys with or without "transformer.").</summary>
    protected virtual string? CheckpointKey(string parameterName, Checkpoint checkpoint) =>
        checkpoint.Contains(parameterName) ? parameterName : null;

    /// <summary>Fills every parameter from the checkpoint; a missing tensor or a wrong shape is an error naming it.</summary>
    public void LoadWeights(Checkpoint checkpoint)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            string key = CheckpointKey(name, checkpoint)
                ?? throw new CheckpointException($"{checkpoint.Folder}: the checkpoint has no tensor '{name}' (needed by {Config.Architecture})");
            using var value = checkpoint.Read(key, parameter.shape, parameter.dtype);
            parameter.copy_(value);
        }
    }

    /// <summary>Random weights (N(0, std²), norms at 1): for benchmarks and the built-in demo models.</summary>
    public void InitializeRandom(long seed, double std = 0.02)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)
                || name.Contains("ln_", StringComparison.Ordinal) && name.EndsWith("weight", StringComparison.Ordinal))
                parameter.fill_(1.0);
            else if (name.EndsWith("bias", StringComparison.Ordinal))
                parameter.zero_();
            else
                parameter.normal_(0, std, generator);
        }
    }

    /// <summary>All parameters under their HuggingFace names, for saving in safetensors.</summary>
    public virtual IEnumerable<(string Name, Tensor Tensor)> StateForSaving() =>
        named_parameters().Select(p => (p.name, (Tensor)p.parameter));
}
