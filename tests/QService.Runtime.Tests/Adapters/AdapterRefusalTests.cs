using System.Text.Json.Nodes;
using QService.Runtime.Loading;
using QService.Runtime.Scoring;
using static QService.Runtime.Tests.Adapters.LoraFixtures;
using static TorchSharp.torch;

namespace QService.Runtime.Tests.Adapters;

/// <summary>Adapters the runtime cannot serve exactly are refused at load, in one line that names the field or tensor.</summary>
public class AdapterRefusalTests
{
    const string Case = "llama-qv-r8";

    /// <summary>The fixture adapter copied into a temp folder with some config fields replaced (JSON values).</summary>
    static TempFolder Modified(params (string Field, string Json)[] fields)
    {
        var folder = new TempFolder().WithFilesFrom(Adapter(Case));
        var config = JsonNode.Parse(File.ReadAllText(folder.File("adapter_config.json")))!.AsObject();
        foreach (var (field, json) in fields) config[field] = JsonNode.Parse(json);
        File.WriteAllText(folder.File("adapter_config.json"), config.ToJsonString());
        return folder;
    }

    static string Refusal(CausalLanguageModel reference, string folder)
    {
        var e = Assert.Throws<CheckpointException>(() => CausalLanguageModel.LoadAdapter(reference, folder));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    public static TheoryData<string, string, string> RefusedFields => new()
    {
        { "use_dora", "true", "DoRA" },
        { "peft_type", "\"LOHA\"", "\"LOHA\"" },
        { "bias", "\"all\"", "\"all\"" },
        { "bias", "\"lora_only\"", "only \"none\"" },
        { "lora_bias", "true", "lora_B" },
        { "use_qalora", "true", "QALoRA" },
        { "megatron_config", "{\"num_layers\": 2}", "Megatron" },
        { "alora_invocation_tokens", "[1, 2]", "aLoRA" },
        { "target_parameters", "[\"mlp.experts.gate_up_proj\"]", "bare parameters" },
        { "layer_replication", "[[0, 2], [1, 2]]", "replicated" },
        { "trainable_token_indices", "[1, 2]", "token rows" },
        { "arrow_config", "{\"top_k\": 2}", "Arrow" },
        { "init_lora_weights", "\"pissa_niter_4\"", "path_initial_model_for_weight_conversion" },
        { "init_lora_weights", "\"loftq\"", "changed while initialising" },
        { "task_type", "\"SEQ_CLS\"", "CAUSAL_LM" },
        { "r", "0", "positive" },
        { "r", "\"eight\"", "an integer" },
        { "target_modules", "null", "missing" },
        { "target_modules", "\"all-linear\"", "'model.layers.0.self_attn.k_proj'" },
        { "target_modules", "[\"q_proj\", \"v_proj\", \"norm\"]", "RmsNorm" },
        { "target_modules", "[\"q_proj\", \"v_proj\", \"embed_tokens\"]", "Embedding" },
        { "target_modules", "[\"q_proj\"]", "not among the targets" },
        { "target_modules", "\"nothing_here\"", "not among the targets" },
        { "target_modules", "\"(q_proj\"", "no valid regex" },
        { "rank_pattern", "{\"q_proj[\": 4}", "no valid regex" },
        { "layers_to_transform", "[0]", "not among the targets" },
        { "rank_pattern", "{\"q_proj\": 4}", "expects [4, 64]" },
        { "modules_to_save", "[\"lm_head\"]", "no 'lm_head.weight'" },
        { "modules_to_save", "[\"model.norm\"]", "only a linear layer or an embedding" },
    };

    [Theory, MemberData(nameof(RefusedFields))]
    public void AConfigField_ThatCannotBeServedExactly_IsRefusedNamingIt(string field, string json, string what)
    {
        using var reference = CausalLanguageModel.Load(Base(Case), new ModelLoadOptions("cpu"));
        using var folder = field == "layers_to_transform" ? Modified((field, json), ("target_modules", "[\"q_proj\", \"v_proj\"]")) : Modified((field, json));
        string message = Refusal(reference, folder.Path);
        Assert.Contains(what, message);
        Assert.True(message.Contains(field) || message.Contains("tensor '"), message);
    }

    [Fact]
    public void ARegexTarget_WithLayersToTransform_IsRefused_AsPeftDoes()
    {
        using var reference = CausalLanguageModel.Load(Base(Case), new ModelLoadOptions("cpu"));
        using var folder = Modified(("target_modules", "\".*\\\\.(q_proj|v_proj)\""), ("layers_to_transform", "[1]"));
        Assert.Contains("layers_to_transform cannot be combined", Refusal(reference, folder.Path));
    }

    [Fact]
    public void AdapterTensors_ThatDoNotFitTheBase_AreRefusedNamingTensorAndShapes()
    {
        // The qwen2 adapter over the llama base: the attention fits (same widths), the MLP (176 against 160 wide) does not.
        using var qwen = CausalLanguageModel.Load(Base("qwen2-all-linear-rslora"), new ModelLoadOptions("cpu"));
        using var wrongBase = CausalLanguageModel.Load(Base("llama-qv-r8"), new ModelLoadOptions("cpu"));
        using var folder = new TempFolder().WithFilesFrom(Adapter("qwen2-all-linear-rslora"));
        string message = Refusal(wrongBase, folder.Path);
        Assert.Matches(@"tensor 'base_model\.model\.model\.layers\.\d\.mlp\.\w+_proj\.lora_[AB]\.weight' has shape \[\d+, \d+\], " +
            @"the base module '[\w.]+' \(in \d+, out \d+, r 4\) expects \[\d+, \d+\]", message);
        using var fits = CausalLanguageModel.LoadAdapter(qwen, folder.Path);
        Assert.NotNull(fits.Adapter);
    }

    [Fact]
    public void ATensorNamingNoModuleOfTheBase_IsRefused()
    {
        using var reference = CausalLanguageModel.Load(Base(Case), new ModelLoadOptions("cpu"));
        using var folder = WithExtraTensor(reference, "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight", [8, 64]);
        Assert.Contains("names module 'model.layers.7.self_attn.q_proj', which the base (LlamaForCausalLM) does not have", Refusal(reference, folder.Path));
        using var other = WithExtraTensor(reference, "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", [64]);
        Assert.Contains("neither a lora_A/lora_B weight nor a modules_to_save", Refusal(reference, other.Path));
        using var embedding = WithExtraTensor(reference, "base_model.model.model.embed_tokens.lora_embedding_A", [8, 320]);
        Assert.Contains("LoRA on an embedding is not supported", Refusal(reference, embedding.Path));
    }

    [Fact]
    public void ModulesToSave_OnATiedLmHead_IsRefused()
    {
        using var tied = CausalLanguageModel.Load(Fixtures.Path("hf-reference-2026", "qwen3-tied"), new ModelLoadOptions("cpu"));
        Assert.True(tied.Config.TieWordEmbeddings);
        using var folder = new TempFolder();
        QService.Runtime.Adapters.PeftAdapterWriter.WriteRandom(tied, folder.Path, r: 2, alpha: 4, targetModules: "q_proj");
        AddTensor(folder.Path, "base_model.model.lm_head.weight", [tied.Config.VocabSize, tied.Config.HiddenSize]);
        var config = JsonNode.Parse(File.ReadAllText(folder.File("adapter_config.json")))!.AsObject();
        config["modules_to_save"] = new JsonArray("lm_head");
        File.WriteAllText(folder.File("adapter_config.json"), config.ToJsonString());
        Assert.Contains("lm_head is tied to the input embedding", Refusal(tied, folder.Path));
    }

    [Fact]
    public void AMissingSafetensorsFile_IsRefused_NamingTheBinFormatWhenThatIsWhatIsThere()
    {
        using var reference = CausalLanguageModel.Load(Base(Case), new ModelLoadOptions("cpu"));
        using var folder = new TempFolder().WithFilesFrom(Adapter(Case), "adapter_model.safetensors");
        Assert.Contains("no adapter_model.safetensors", Refusal(reference, folder.Path));
        File.WriteAllBytes(folder.File("adapter_model.bin"), [0]);
        Assert.Contains("only adapter_model.safetensors is supported, not adapter_model.bin", Refusal(reference, folder.Path));
        Assert.Contains("not found", Refusal(reference, folder.File("nowhere")));
    }

    public static TheoryData<string, string> PeftMadeRefusals => new()
    {
        { "dora", "use_dora is true: DoRA" },
        { "ia3", "peft_type is \"IA3\"" },
        { "bias-all", "bias is \"all\"" },
        { "hidden96-qv", "has shape [8, 96], the base module 'model.layers.0.self_attn.q_proj' (in 64, out 64, r 8) expects [8, 64]" },
    };

    /// <summary>Adapters PEFT itself wrote and reloads (lora/refused/, see README-generated.md), over the 64-wide Llama base they name or fit.</summary>
    [Theory, MemberData(nameof(PeftMadeRefusals))]
    public void AdaptersPeftWrote_ThatTheRuntimeCannotServe_AreRefusedInOneLine(string name, string what)
    {
        using var reference = CausalLanguageModel.Load(Base("llama-rank-alpha-patterns"), new ModelLoadOptions("cpu"));
        Assert.Contains(what, Refusal(reference, Fixtures.Path("hf-reference-2026", "lora", "refused", name, "adapter")));
    }

    [Fact]
    public void TheHidden96Adapter_LoadsOverItsOwnBase()
    {
        using var own = CausalLanguageModel.Load(Fixtures.Path("hf-reference-2026", "lora", "refused", "hidden96-qv", "base"), new ModelLoadOptions("cpu"));
        using var policy = CausalLanguageModel.LoadAdapter(own, Fixtures.Path("hf-reference-2026", "lora", "refused", "hidden96-qv", "adapter"));
        Assert.Equal(4, policy.Adapter!.ModuleCount);
    }

    [Fact]
    public void EnsureWeightTying_WithTheEmbeddingOfATiedBaseSaved_IsRefused()
    {
        const string tiedCase = "qwen3-tied-embed-to-save";
        using var tied = CausalLanguageModel.Load(Base(tiedCase), new ModelLoadOptions("cpu"));
        using var folder = new TempFolder().WithFilesFrom(Adapter(tiedCase));
        var config = JsonNode.Parse(File.ReadAllText(folder.File("adapter_config.json")))!.AsObject();
        config["ensure_weight_tying"] = true;
        File.WriteAllText(folder.File("adapter_config.json"), config.ToJsonString());
        Assert.Contains("ensure_weight_tying is true", Refusal(tied, folder.Path));
    }

    static TempFolder WithExtraTensor(CausalLanguageModel reference, string key, long[] shape)
    {
        var folder = new TempFolder().WithFilesFrom(Adapter(Case));
        AddTensor(folder.Path, key, shape);
        return folder;
    }

    /// <summary>Rewrites the folder's adapter_model.safetensors with one more (zero) tensor.</summary>
    static void AddTensor(string folder, string key, long[] shape)
    {
        string path = Path.Combine(folder, "adapter_model.safetensors");
        var file = SafeTensorsFile.Open(path);
        using var scope = NewDisposeScope();
        var tensors = file.Tensors.Keys.Select(k => (k, file.Read(k))).Append((key, zeros(shape))).ToList();
        SafeTensorsWriter.Write(path, tensors);
    }
}
