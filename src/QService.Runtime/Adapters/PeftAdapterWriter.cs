using System.Text.Json.Nodes;
using QService.Runtime.Loading;
using QService.Runtime.Scoring;
using static TorchSharp.torch;

namespace QService.Runtime.Adapters;

/// <summary>
/// Writes random LoRA adapters in PEFT 0.18's format (adapter_config.json with every LoraConfig field PEFT saves, and
/// adapter_model.safetensors in float32), for benchmarks and tests on bases that have no trained adapter.
/// </summary>
public static class PeftAdapterWriter
{
    /// <summary>
    /// A random adapter for <paramref name="baseModel"/> in <paramref name="folder"/>: lora_A uniform in ±1/√in (PEFT's
    /// default init), lora_B N(0, <paramref name="bStd"/>²) so that the adapter changes the outputs.
    /// </summary>
    /// <param name="targetModules">"all-linear" (written as the resolved names, as PEFT saves it) or comma-separated module names</param>
    /// <param name="baseModelNameOrPath">written as base_model_name_or_path (default: the base's name)</param>
    public static void WriteRandom(CausalLanguageModel baseModel, string folder, int r, double alpha, string targetModules = "all-linear",
        long seed = 0, bool useRslora = false, double bStd = 0.02, string? baseModelNameOrPath = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(r, 1);
        if (baseModel.Adapter is not null) throw new ArgumentException($"{baseModel.Name} is an adapter model; write adapters for its base");
        Directory.CreateDirectory(folder);
        var sites = AdapterSites.Of(baseModel.Module);
        string[] targets = string.Equals(targetModules, "all-linear", StringComparison.OrdinalIgnoreCase)
            ? [.. sites.Where(s => s.IsLinear).Select(s => s.Name)]
            : [.. targetModules.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
        bool conv1D = baseModel.Config.Architecture == "GPT2LMHeadModel";
        File.WriteAllText(Path.Combine(folder, LoraAdapterConfig.FileName),
            Config(r, alpha, useRslora, targets, baseModelNameOrPath ?? baseModel.Name, fanInFanOut: conv1D).ToJsonString(new() { WriteIndented = true }));
        var rules = new LoraTargets(LoraAdapterConfig.Load(folder));

        using var scope = NewDisposeScope();
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        var tensors = new List<(string, Tensor)>();
        foreach (var site in sites.Where(s => rules.IsTarget(s.Name, s.IsLinear) && s.LowRank is not null))
        {
            var (inFeatures, outFeatures) = site.LowRank!.Features;
            double bound = 1 / Math.Sqrt(inFeatures);
            tensors.Add(($"base_model.model.{site.Name}.lora_A.weight", rand([r, inFeatures], generator: generator).mul_(2 * bound).sub_(bound)));
            tensors.Add(($"base_model.model.{site.Name}.lora_B.weight", randn([outFeatures, r], generator: generator).mul_(bStd)));
        }
        if (tensors.Count == 0) throw new ArgumentException($"target_modules '{targetModules}' matches no linear layer of {baseModel.Name}");
        SafeTensorsWriter.Write(Path.Combine(folder, AdapterTensors.FileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>adapter_config.json as PEFT 0.18.1's save_pretrained writes it, defaults included (fan_in_fan_out: PEFT sets it for Conv1D).</summary>
    static JsonObject Config(int r, double alpha, bool useRslora, string[] targets, string baseModel, bool fanInFanOut) => new()
    {
        ["alora_invocation_tokens"] = null, ["alpha_pattern"] = new JsonObject(), ["arrow_config"] = null, ["auto_mapping"] = null,
        ["base_model_name_or_path"] = baseModel, ["bias"] = "none", ["corda_config"] = null, ["ensure_weight_tying"] = false,
        ["eva_config"] = null, ["exclude_modules"] = null, ["fan_in_fan_out"] = fanInFanOut, ["inference_mode"] = true, ["init_lora_weights"] = true,
        ["layer_replication"] = null, ["layers_pattern"] = null, ["layers_to_transform"] = null, ["loftq_config"] = new JsonObject(),
        ["lora_alpha"] = alpha, ["lora_bias"] = false, ["lora_dropout"] = 0.0, ["megatron_config"] = null, ["megatron_core"] = "megatron.core",
        ["modules_to_save"] = null, ["peft_type"] = "LORA", ["peft_version"] = "0.18.1", ["qalora_group_size"] = 16, ["r"] = r,
        ["rank_pattern"] = new JsonObject(), ["revision"] = null, ["target_modules"] = new JsonArray([.. targets.Select(t => (JsonNode)t)]),
        ["target_parameters"] = null, ["task_type"] = "CAUSAL_LM", ["trainable_token_indices"] = null, ["use_dora"] = false,
        ["use_qalora"] = false, ["use_rslora"] = useRslora,
    };
}
