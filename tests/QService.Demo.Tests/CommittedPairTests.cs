using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;

namespace QService.Demo.Tests;

/// <summary>The demo pair committed under models/demo does what the demo claims.</summary>
public class CommittedPairTests
{
    [Fact]
    public void ImplicitReward_PrefersTheBetterResponse_OnHeldOutPairs()
    {
        using var policy = CausalLanguageModel.Load(Fixtures.DemoPair("policy"), new ModelLoadOptions("cpu"));
        using var reference = CausalLanguageModel.Load(Fixtures.DemoPair("reference"), new ModelLoadOptions("cpu"));
        using var tokenizer = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        var evaluation = new DemoEvaluation(policy, reference, tokenizer, beta: 0.1);
        // Seed 1000 is not the training seed: these pairs were never seen in training.
        double accuracy = evaluation.ImplicitRewardAccuracy(DemoEvaluation.HeldOutPairs(400, seed: 1000));
        Assert.True(accuracy >= 0.85, $"implicit reward accuracy {accuracy:P1} on 400 held-out pairs");
        Console.WriteLine($"implicit reward accuracy {accuracy:P1}");
    }
}
