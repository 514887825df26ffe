namespace QService.Runtime.Adapters;

/// <summary>
/// The adapter_config.json options of PEFT 0.18 that change the forward in ways the runtime does not compute: refused
/// at load with one line naming the field, rather than served as plain LoRA with other numbers than PEFT's.
/// Options that only shape training (lora_dropout, inference_mode, the init of A and B, eva/corda/loftq configs
/// of an init not used) are read past.
/// </summary>
static class LoraRefusals
{
    /// <summary>Options whose "on" value the runtime refuses, each with what it is.</summary>
    static readonly (string Field, string What)[] OffOnly =
    [
        ("use_dora", "is true: DoRA (weight-decomposed LoRA) is not supported; merge the adapter into the base with PEFT and serve the merged model"),
        ("lora_bias", "is true: a bias on lora_B is not supported; merge the adapter into the base with PEFT and serve the merged model"),
        ("use_qalora", "is true: QALoRA (for GPTQ-quantized bases) is not supported"),
        ("megatron_config", "is set: Megatron parallel LoRA layers are not supported"),
        ("alora_invocation_tokens", "is set: activated LoRA (aLoRA, on only after the invocation tokens) is not supported"),
        ("target_parameters", "is set: LoRA on bare parameters (MoE experts) is not supported; only modules named in target_modules"),
        ("layer_replication", "is set: replicated layers are not supported"),
        ("trainable_token_indices", "is set: trainable token rows are not supported; merge the adapter into the base with PEFT"),
        ("arrow_config", "is set: Arrow routing over several adapters is not supported"),
        ("modules_to_tie", "is set: layers tied to a modules_to_save copy are not supported"),
    ];

    /// <summary>init_lora_weights values after which the adapter belongs to a changed base (PEFT moves the principal part out of W).</summary>
    static readonly string[] BaseChangingInits = ["pissa", "olora", "corda", "loftq"];

    public static void Check(ConfigFields read)
    {
        string? type = read.String("peft_type");
        if (type != "LORA")
            throw read.Fail("peft_type", type is null ? "is missing; only LoRA adapters (peft_type \"LORA\") are supported"
                : $"is \"{type}\"; only LoRA adapters (peft_type \"LORA\") are supported");
        foreach (var (field, what) in OffOnly)
            if (!read.IsOff(field)) throw read.Fail(field, what);
        string bias = read.String("bias") ?? "none";
        if (bias != "none")
            throw read.Fail("bias", $"is \"{bias}\"; only \"none\" is supported (trained biases: merge the adapter into the base with PEFT)");
        string? task = read.String("task_type");
        if (task is not null && task != "CAUSAL_LM")
            throw read.Fail("task_type", $"is \"{task}\"; only CAUSAL_LM adapters score next tokens");
        if (read.Node("init_lora_weights") is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? init)
            && BaseChangingInits.Any(p => init.StartsWith(p, StringComparison.Ordinal)))
            throw read.Fail("init_lora_weights", $"is \"{init}\": this adapter works only on the base PEFT changed while initialising it; " +
                "save it with path_initial_model_for_weight_conversion to get an adapter over the original base");
    }
}
