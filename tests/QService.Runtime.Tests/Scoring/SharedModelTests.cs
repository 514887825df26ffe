using QService.Runtime.Scoring;
using TorchSharp;
using static QService.Runtime.Tests.Adapters.LoraFixtures;

namespace QService.Runtime.Tests.Scoring;

/// <summary>A shared model (a policy served from the reference's own folder) runs the same module and frees nothing of it.</summary>
public class SharedModelTests
{
    [Fact]
    public void ASharedModel_RunsTheSameWeights_AndDisposingItLeavesThemAlive()
    {
        var expected = Load("llama-qv-r8");
        using var reference = CausalLanguageModel.Load(Base("llama-qv-r8"), new ModelLoadOptions("cpu"));
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var shared = CausalLanguageModel.Share(reference, "sft");
        Assert.Same(reference.Module, shared.Module);
        Assert.Equal("sft", shared.Name);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount); // no tensor added
        Assert.Equal(reference.ScoreNextTokens(expected.input_ids).Select(r => r.Logprobs), shared.ScoreNextTokens(expected.input_ids).Select(r => r.Logprobs));

        shared.Dispose();
        var after = reference.ScoreNextTokens([expected.input_ids[0]])[0].Logprobs;
        for (int t = 0; t < after.Length; t++) Assert.True(Math.Abs(after[t] - expected.reference_next_token_logprobs[0][t]) <= 1e-4);
        using var adapter = CausalLanguageModel.LoadAdapter(reference, Adapter("llama-qv-r8"));
        Assert.Throws<ArgumentException>(() => CausalLanguageModel.Share(adapter, "x"));
    }
}
