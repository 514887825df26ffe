using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// LoRA adapters served over real sockets, on PEFT's fixtures: an adapter policy over its base as the reference gives PEFT's
/// numbers, its base found from base_model_name_or_path when no reference is given; an adapter and the base itself as two
/// policies share the one base; a refused adapter stops the start-up with the field named.
/// </summary>
public class AdapterServingTests
{
    static string Case(string name, params string[] parts) => Fixtures.Path(["hf-reference-2026", "lora", name, .. parts]);

    static JsonElement Expected(string name) => JsonDocument.Parse(File.ReadAllText(Case(name, "expected.json"))).RootElement;

    static IEnumerable<(ScoreItem Item, JsonElement Pair)> Pairs(JsonElement expected) => expected.GetProperty("pairs").EnumerateArray().Select((p, i) =>
        (new ScoreItem
        {
            Id = $"p{i}",
            PromptTokenIds = { p.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()) },
            ResponseTokenIds = { p.GetProperty("response_ids").EnumerateArray().Select(e => e.GetInt32()) },
        }, p));

    static void AssertMatches(JsonElement pair, ScoredItem result)
    {
        var policy = pair.GetProperty("policy_logprobs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var reference = pair.GetProperty("reference_logprobs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        for (int t = 0; t < policy.Length; t++)
        {
            Assert.Equal(policy[t], result.PolicyLogprobs[t], 1e-4);
            Assert.Equal(reference[t], result.ReferenceLogprobs[t], 1e-4);
        }
        Assert.Equal(pair.GetProperty("reward").GetDouble(), result.Reward, 2e-5 * policy.Length);
    }

    [Fact]
    public async Task AnAdapterAlone_FindsItsBase_AndGivesPeftsNumbers()
    {
        await using var server = await ServerProcess.StartServingAsync("--policy", Case("llama-qv-r8", "adapter"), "--beta", "0.1");
        var expected = Expected("llama-qv-r8");
        var pairs = Pairs(expected).ToList();
        var response = await server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { pairs.Select(p => p.Item) } });
        for (int i = 0; i < pairs.Count; i++) AssertMatches(pairs[i].Pair, response.Results[i]);

        var info = await server.Channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        var adapter = Assert.Single(info.Policies).Adapter;
        Assert.NotNull(adapter);
        Assert.Equal(("LORA", 8, 16f, 4), (adapter.PeftType, adapter.Rank, adapter.LoraAlpha, adapter.ModuleCount));
        Assert.Equal(["v_proj", "q_proj"], adapter.TargetModules);
        Assert.Equal("base", info.ReferenceModel);
    }

    [Fact]
    public async Task AnAdapterAndItsBase_ServeTogether_OverOneCopyOfTheBase()
    {
        string baseFolder = Case("qwen2-all-linear-rslora", "base");
        await using var server = await ServerProcess.StartServingAsync(
            "--policy", $"rslora={Case("qwen2-all-linear-rslora", "adapter")}", "--policy", $"sft={baseFolder}", "--reference", baseFolder, "--beta", "0.1");
        var expected = Expected("qwen2-all-linear-rslora");
        var pairs = Pairs(expected).ToList();
        var request = new ScoreRequest { Items = { pairs.Select(p => p.Item) }, Policies = { "rslora", "sft" } };
        var response = await server.Channel.Scorer.ScoreAsync(request);
        for (int i = 0; i < pairs.Count; i++)
        {
            AssertMatches(pairs[i].Pair, response.Results[2 * i]);
            var sft = response.Results[2 * i + 1];
            Assert.Equal("sft", sft.Policy);
            Assert.All(sft.Credits, c => Assert.Equal(0f, c)); // the base served as a policy is the reference itself
        }
        var info = await server.Channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal(14, info.Policies[0].Adapter.ModuleCount);
        Assert.Null(info.Policies[1].Adapter);
    }

    [Theory]
    [InlineData("dora", "use_dora")]
    [InlineData("ia3", "peft_type")]
    [InlineData("bias-all", "bias")]
    public async Task ARefusedAdapter_StopsTheStartUp_NamingTheField(string refused, string field)
    {
        await using var server = ServerProcess.Start("--policy", Case("refused", refused, "adapter"), "--reference", Case("llama-rank-alpha-patterns", "base"));
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), "the server should stop");
        Assert.Equal(1, server.ExitCode);
        Assert.Contains(field, server.Output);
    }

    [Fact]
    public async Task AnAdapterForAnotherBase_IsRefused_NamingTheSize()
    {
        await using var server = ServerProcess.Start("--policy", Case("refused", "hidden96-qv", "adapter"), "--reference", Case("llama-qv-r8", "base"));
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), "the server should stop");
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("hidden_size 96", server.Output);
    }
}
