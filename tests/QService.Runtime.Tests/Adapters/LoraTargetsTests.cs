using System.Text.Json.Nodes;
using QService.Runtime.Adapters;

namespace QService.Runtime.Tests.Adapters;

/// <summary>
/// The matching rules against what PEFT 0.18.1's code does (tuners_utils.check_target_module_exists,
/// utils.other.get_pattern_key, _set_trainable), on the module names of a Llama-style base.
/// </summary>
public class LoraTargetsTests
{
    const string Q0 = "model.layers.0.self_attn.q_proj", Q1 = "model.layers.1.self_attn.q_proj", V1 = "model.layers.1.self_attn.v_proj";
    const string Down0 = "model.layers.0.mlp.down_proj";

    static LoraTargets Rules(string json)
    {
        using var folder = new TempFolder();
        var config = JsonNode.Parse(json)!.AsObject();
        config["peft_type"] ??= "LORA";
        File.WriteAllText(folder.File("adapter_config.json"), config.ToJsonString());
        return new LoraTargets(LoraAdapterConfig.Load(folder.Path));
    }

    [Fact]
    public void AListEntry_MatchesTheWholeNameOrADottedSuffix()
    {
        var rules = Rules("""{"target_modules": ["q_proj", "self_attn.v_proj"]}""");
        Assert.True(rules.IsTarget(Q0, isLinear: true));
        Assert.True(rules.IsTarget(V1, isLinear: true));
        Assert.False(rules.IsTarget("model.layers.0.self_attn.xq_proj", isLinear: true)); // a suffix after a dot, not any suffix
        Assert.False(rules.IsTarget(Down0, isLinear: true));
        Assert.True(Rules("""{"target_modules": ["q_proj"]}""").IsTarget("q_proj", isLinear: true)); // the name itself
    }

    [Fact]
    public void ARegexTarget_MustMatchTheWholeName()
    {
        var rules = Rules("""{"target_modules": ".*layers\\.1\\..*(q_proj|v_proj)"}""");
        Assert.True(rules.IsTarget(Q1, isLinear: true));
        Assert.False(rules.IsTarget(Q0, isLinear: true));
        Assert.False(Rules("""{"target_modules": "q_proj"}""").IsTarget(Q0, isLinear: true)); // fullmatch: no implicit suffix
        Assert.False(Rules("""{"target_modules": ".*q_pro"}""").IsTarget(Q0, isLinear: true));
    }

    [Fact]
    public void AllLinear_TakesTheLinearLayersTheCallerNames_InAnyCase()
    {
        var rules = Rules("""{"target_modules": "ALL-LINEAR"}""");
        Assert.True(rules.IsTarget(Down0, isLinear: true));
        Assert.False(rules.IsTarget("model.norm", isLinear: false));
    }

    [Fact]
    public void LayersToTransform_KeepsTheListedLayers_ByTheNumberAfterTheLayersPattern()
    {
        Assert.False(Rules("""{"target_modules": ["q_proj"], "layers_to_transform": [1]}""").IsTarget(Q0, isLinear: true));
        Assert.True(Rules("""{"target_modules": ["q_proj"], "layers_to_transform": [1]}""").IsTarget(Q1, isLinear: true));
        Assert.True(Rules("""{"target_modules": ["q_proj"], "layers_to_transform": 1}""").IsTarget(Q1, isLinear: true)); // an int as PEFT allows
        Assert.True(Rules("""{"target_modules": ["q_proj"], "layers_to_transform": [1], "layers_pattern": "layers"}""").IsTarget(Q1, isLinear: true));
        Assert.False(Rules("""{"target_modules": ["q_proj"], "layers_to_transform": [1], "layers_pattern": ["h"]}""").IsTarget(Q1, isLinear: true));
        Assert.True(Rules("""{"target_modules": ["c_attn"], "layers_to_transform": [0]}""").IsTarget("transformer.h.0.attn.c_attn", isLinear: true));
        // PEFT's quirk: a full module name in the list is taken before the layer filter is looked at.
        Assert.True(Rules($$"""{"target_modules": ["{{Q0}}"], "layers_to_transform": [1]}""").IsTarget(Q0, isLinear: true));
    }

    [Fact]
    public void RankAndAlphaPatterns_TakeTheFirstKeyMatchingAtADotBoundary()
    {
        var rules = Rules("""
            {"target_modules": ["q_proj", "v_proj", "down_proj"], "r": 8, "lora_alpha": 16,
             "rank_pattern": {"q_proj": 16, "layers.1.self_attn.q_proj": 4, "proj": 2, "layers\\.1\\..*v_proj": 12},
             "alpha_pattern": {"model.layers.0.mlp.down_proj": 64}}
            """);
        Assert.Equal((16, 16.0), rules.RankAndAlpha(Q0));
        Assert.Equal((16, 16.0), rules.RankAndAlpha(Q1)); // "q_proj" comes first and matches too
        Assert.Equal((12, 16.0), rules.RankAndAlpha(V1));
        Assert.Equal((8, 64.0), rules.RankAndAlpha(Down0)); // "proj" matches no name: it must follow a dot or start the name
        Assert.Equal(64.0 / 8, rules.Scaling(Down0));
    }

    [Fact]
    public void Rslora_ScalesByTheSquareRootOfTheModulesRank()
    {
        var rules = Rules("""{"target_modules": ["q_proj"], "r": 4, "lora_alpha": 8, "use_rslora": true, "rank_pattern": {"layers.1.self_attn.q_proj": 16}}""");
        Assert.Equal(4.0, rules.Scaling(Q0));
        Assert.Equal(2.0, rules.Scaling(Q1));
    }

    [Fact]
    public void ModulesToSave_AreReplacedNotAdapted_AndExcludeModulesAreLeftAlone()
    {
        var rules = Rules("""{"target_modules": "all-linear", "modules_to_save": ["lm_head", "embed_tokens"], "exclude_modules": ["down_proj"]}""");
        Assert.True(rules.IsSaved("lm_head"));
        Assert.True(rules.IsSaved("model.embed_tokens"));
        Assert.False(rules.IsTarget("lm_head", isLinear: true));
        Assert.False(rules.IsTarget(Down0, isLinear: true));
        Assert.True(rules.IsTarget(Q0, isLinear: true));
        Assert.True(Rules("""{"target_modules": ["q_proj"], "modules_to_save": ["head"]}""").IsSaved("lm_head")); // a plain suffix, as PEFT
        var regexExcluded = Rules("""{"target_modules": ["q_proj"], "exclude_modules": ".*layers\\.0\\..*"}""");
        Assert.False(regexExcluded.IsTarget(Q0, isLinear: true));
        Assert.True(regexExcluded.IsTarget(Q1, isLinear: true));
    }
}
