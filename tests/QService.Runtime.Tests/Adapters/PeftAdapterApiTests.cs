using System.Text.Json.Nodes;
using QService.Runtime.Adapters;
using QService.Runtime.Loading;
using QService.Runtime.Scoring;
using static QService.Runtime.Tests.Adapters.LoraFixtures;

namespace QService.Runtime.Tests.Adapters;

/// <summary>What the engine calls: recognising an adapter folder, finding its base, describing it; and the random-adapter writer.</summary>
public class PeftAdapterApiTests
{
    [Fact]
    public void AnAdapterFolder_IsRecognised_AndItsBaseFoundRelativeToIt()
    {
        string adapter = Adapter("llama-qv-r8");
        Assert.True(PeftAdapter.IsAdapterFolder(adapter));
        Assert.False(PeftAdapter.IsAdapterFolder(Base("llama-qv-r8")));
        Assert.Equal("../base", PeftAdapter.BaseModelPath(adapter));
        Assert.Equal(Path.GetFullPath(Base("llama-qv-r8")), PeftAdapter.LocalBaseFolder(adapter));
    }

    [Fact]
    public void ARefusedAdapter_FailsWhenItsBaseIsLookedUp_BeforeTheBaseIsLoaded()
    {
        var e = Assert.Throws<CheckpointException>(() => PeftAdapter.BaseModelPath(Fixtures.Path("hf-reference-2026", "lora", "refused", "dora", "adapter")));
        Assert.Contains("use_dora", e.Message);
    }

    [Theory]
    [InlineData("meta-llama/Llama-3.2-1B", false)]
    [InlineData("ABSOLUTE", true)]
    [InlineData(null, false)]
    public void ABaseThatIsNoLocalFolder_ResolvesToNull(string? written, bool local)
    {
        using var folder = new TempFolder().WithFilesFrom(Adapter("llama-qv-r8"));
        var config = JsonNode.Parse(File.ReadAllText(folder.File("adapter_config.json")))!.AsObject();
        string absolute = Path.GetFullPath(Base("llama-qv-r8"));
        config["base_model_name_or_path"] = written == "ABSOLUTE" ? absolute : written;
        File.WriteAllText(folder.File("adapter_config.json"), config.ToJsonString());
        Assert.Equal(written == "ABSOLUTE" ? absolute : written, PeftAdapter.BaseModelPath(folder.Path));
        Assert.Equal(local ? absolute : null, PeftAdapter.LocalBaseFolder(folder.Path));
    }

    [Fact]
    public void TheDescription_SaysRankAlphaAndTargets()
    {
        using var models = new Loaded("llama-qv-r8");
        var d = models.Policy.Adapter!;
        Assert.Equal(("LORA", 8, 16.0, false, 4), (d.PeftType, d.R, d.LoraAlpha, d.UseRslora, d.ModuleCount));
        Assert.Equal(Path.GetFullPath(Adapter("llama-qv-r8")), d.Folder);
        Assert.Equal("""["v_proj","q_proj"]""", d.TargetModules);
        Assert.Empty(d.ModulesToSave);
        Assert.StartsWith("LoRA r=8 alpha=16 rslora=false on 4 modules (q_proj, v_proj), 0.0", d.Describe());
        Assert.Equal("adapter", models.Policy.Name);
    }

    [Fact]
    public void ARandomAdapter_IsWrittenAsPeftWritesOne_AndLoadsOverItsBase()
    {
        using var reference = CausalLanguageModel.Load(Base("qwen2-all-linear-rslora"), new ModelLoadOptions("cpu"));
        using var folder = new TempFolder();
        PeftAdapterWriter.WriteRandom(reference, folder.Path, r: 16, alpha: 32, seed: 5);
        var config = JsonNode.Parse(File.ReadAllText(folder.File("adapter_config.json")))!.AsObject();
        Assert.Equal(("LORA", 16, "none"), (config["peft_type"]!.GetValue<string>(), config["r"]!.GetValue<int>(), config["bias"]!.GetValue<string>()));
        var file = SafeTensorsFile.Open(folder.File("adapter_model.safetensors"));
        Assert.Equal([16L, 176L], file.Tensors["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"].Shape);
        Assert.Equal([64L, 16L], file.Tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].Shape);

        using var policy = CausalLanguageModel.LoadAdapter(reference, folder.Path, "random");
        Assert.Equal(14, policy.Adapter!.ModuleCount); // 2 layers x (q, k, v, o, gate, up, down); lm_head is the output layer
        Assert.DoesNotContain("lm_head", policy.Adapter.Modules);
        var seq = Load("qwen2-all-linear-rslora").input_ids[0];
        var changed = policy.ScoreNextTokens([seq])[0].Logprobs.Zip(reference.ScoreNextTokens([seq])[0].Logprobs).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(changed > 1e-3, $"the random adapter changes the log-probs (max change {changed})");

        using var some = new TempFolder();
        PeftAdapterWriter.WriteRandom(reference, some.Path, r: 2, alpha: 2, targetModules: "q_proj, v_proj", seed: 5);
        using var qv = CausalLanguageModel.LoadAdapter(reference, some.Path);
        Assert.Equal(4, qv.Adapter!.ModuleCount);
    }

    [Fact]
    public void ARandomAdapterForGpt2_TargetsItsConv1DLayers_WithFanInFanOut()
    {
        using var reference = CausalLanguageModel.Load(Base("gpt2-fan-in-fan-out"), new ModelLoadOptions("cpu"));
        using var folder = new TempFolder();
        PeftAdapterWriter.WriteRandom(reference, folder.Path, r: 4, alpha: 8, seed: 1);
        Assert.True(JsonNode.Parse(File.ReadAllText(folder.File("adapter_config.json")))!["fan_in_fan_out"]!.GetValue<bool>());
        using var policy = CausalLanguageModel.LoadAdapter(reference, folder.Path);
        Assert.Equal(["c_attn", "c_proj", "c_fc"], policy.Adapter!.Modules.Select(m => m[(m.LastIndexOf('.') + 1)..]).Distinct());
        Assert.Equal(8, policy.Adapter.ModuleCount); // 2 blocks x (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj); lm_head is tied to wte
    }

    [Fact]
    public void AnAdapterModel_CannotBeConvertedSavedOrStackedAsIfItWereABase()
    {
        using var models = new Loaded("llama-qv-r8");
        using var folder = new TempFolder();
        Assert.Throws<InvalidOperationException>(() => models.Policy.ConvertTo("bfloat16"));
        Assert.Throws<InvalidOperationException>(() => models.Policy.SaveAsHuggingFace(folder.Path));
        Assert.Throws<ArgumentException>(() => CausalLanguageModel.LoadAdapter(models.Policy, Adapter("llama-qv-r8")));
    }
}
