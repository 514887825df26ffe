using QService.Runtime.Adapters;
using QService.Runtime.Loading;
using QService.Runtime.Scoring;
using TorchSharp;
using static QService.Runtime.Tests.Adapters.LoraFixtures;

namespace QService.Runtime.Tests.Adapters;

/// <summary>The adapter model holds only A and scaled B; the base's weights exist once, and outlive the adapter.</summary>
public class AdapterMemoryTests
{
    [Theory]
    [InlineData("llama-qv-r8")]
    [InlineData("qwen2-all-linear-rslora")]
    public void AnAdapterModel_SharesTheBaseModule_AndAddsOnlyItsOwnTensors(string name)
    {
        var expected = Load(name);
        using var reference = CausalLanguageModel.Load(Base(name), new ModelLoadOptions("cpu"));
        var baseHandles = reference.Module.parameters().Select(p => p.Handle).ToArray();
        var file = SafeTensorsFile.Open(Path.Combine(Adapter(name), "adapter_model.safetensors"));
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        var policy = CausalLanguageModel.LoadAdapter(reference, Adapter(name));
        Assert.Same(reference.Module, policy.Module);
        Assert.Equal(baseHandles, policy.Module.parameters().Select(p => p.Handle));
        // One tensor per A and per B, nothing else: a copied base would add every parameter again.
        Assert.Equal(file.Tensors.Count, DisposeScopeManager.Statistics.ThreadTotalLiveCount - before);
        Assert.Equal(file.Tensors.Values.Sum(t => t.End - t.Begin), policy.Adapter!.Bytes); // F32 in the file and in memory
        policy.ScoreNextTokens(expected.input_ids);

        policy.Dispose();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        var after = reference.ScoreNextTokens([expected.input_ids[0]])[0].Logprobs;
        for (int t = 0; t < after.Length; t++) Assert.True(Math.Abs(after[t] - expected.reference_next_token_logprobs[0][t]) <= 1e-4);
    }

    [Fact]
    public void PolicyAndReferencePasses_ThroughTheAdapter_LeaveNoLiveTensors()
    {
        using var models = new Loaded("qwen2-all-linear-rslora");
        var inputs = models.Expected.input_ids;
        void Round(int i)
        {
            foreach (var model in new[] { models.Policy, models.Reference })
            {
                model.ScoreNextTokens(i % 2 == 0 ? inputs : [inputs[i % 3]], includeLastLogits: i % 3 == 0);
                var head = model.Extend([new PassInput(inputs[2][..10], FirstTarget: 1, NewBlockSize: 5)])[0].NewBlocks;
                model.Extend([new PassInput(inputs[2], FirstTarget: 10, head, PastLength: 9, CachedLength: 10)], includeLastLogits: true);
                foreach (var block in head) block.Dispose();
                using var batch = new DecodeBatch(model);
                batch.Add([new DecodeStart(new PassInput(inputs[0], inputs[0].Length), Copies: 2)]);
                for (int step = 0; step < 3; step++) batch.Step([1, 2]);
            }
        }
        Round(0); // warm-up: lazily created process-wide state is not counted
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 30; i++) Round(i);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void TwoAdaptersOverOneBase_EachGiveTheirOwnNumbers_AndCannotBeOnAtOnce()
    {
        using var models = new Loaded("llama-qv-r8");
        using var folder = new TempFolder();
        PeftAdapterWriter.WriteRandom(models.Reference, folder.Path, r: 4, alpha: 8, targetModules: "all-linear", seed: 3);
        using var other = CausalLanguageModel.LoadAdapter(models.Reference, folder.Path, "other");
        var seq = models.Expected.input_ids[1];
        var alone = other.ScoreNextTokens([seq])[0].Logprobs;
        for (int round = 0; round < 2; round++)
        {
            Assert.Equal(alone, other.ScoreNextTokens([seq])[0].Logprobs);
            var policy = models.Policy.ScoreNextTokens([seq])[0].Logprobs;
            var reference = models.Reference.ScoreNextTokens([seq])[0].Logprobs;
            for (int t = 0; t < policy.Length; t++)
            {
                Assert.True(Math.Abs(policy[t] - models.Expected.policy_next_token_logprobs[1][t]) <= 1e-4);
                Assert.True(Math.Abs(reference[t] - models.Expected.reference_next_token_logprobs[1][t]) <= 1e-4);
            }
            Assert.True(alone.Zip(reference).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the random adapter changes the numbers");
        }

        // The switch itself: a second adapter on the same layers while one is on is a bug, refused; off again, it can go on.
        using var first = PeftAdapter.Load(models.Reference.Module, Adapter("llama-qv-r8"), models.Reference.Dtype, models.Reference.Device);
        using var second = PeftAdapter.Load(models.Reference.Module, folder.Path, models.Reference.Dtype, models.Reference.Device);
        using (first.Activate())
            Assert.Throws<InvalidOperationException>(() => second.Activate());
        second.Activate().Dispose();
    }
}
