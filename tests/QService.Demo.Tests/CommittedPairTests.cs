using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;

namespace QService.Demo.Tests;

/// <summary>The demo pair committed under models/demo does what the demo claims.</summary>
public class CommittedPairTests
{
    public static string DemoFolder(string role)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "models", "demo", role);
            if (File.Exists(Path.Combine(candidate, "model.safetensors"))) return candidate;
        }
        throw new DirectoryNotFoundException($"models/demo/{role} not found above {AppContext.BaseDirectory}; it is committed with the repository");
    }

    [Fact]
    public void ImplicitReward_PrefersTheBetterResponse_OnHeldOutPairs()
    {
        using var policy = CausalLanguageModel.Load(DemoFolder("policy"), new ModelLoadOptions("cpu"));
        using var reference = CausalLanguageModel.Load(DemoFolder("reference"), new ModelLoadOptions("cpu"));
        using var tokenizer = HfTokenizer.Load(DemoFolder("policy"));
        var evaluation = new DemoEvaluation(policy, reference, tokenizer, beta: 0.1);
        // Seed 1000 is not the training seed: these pairs were never seen in training.
        double accuracy = evaluation.ImplicitRewardAccuracy(DemoEvaluation.HeldOutPairs(400, seed: 1000));
        Assert.True(accuracy >= 0.85, $"implicit reward accuracy {accuracy:P1} on 400 held-out pairs");
        Console.WriteLine($"implicit reward accuracy {accuracy:P1}");
    }
}
