using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;

namespace QService.Demo.Tests;

public class TrainerTests
{
    [Fact]
    public async Task TinyRun_WritesAPairThatTheRuntimeAndTheServiceLoad()
    {
        using var folder = new TempFolder();
        var log = new StringWriter();
        var steps = new DemoTrainer(DemoTrainingOptions.Tiny(new DemoTrainingOptions { Loss = "nca", Beta = 0.25 }), log).Run(folder.Path);
        Assert.NotEmpty(steps);
        Assert.Contains("sft step", log.ToString());
        Assert.Contains("nca step", log.ToString());
        Assert.All(steps, s => Assert.True(double.IsFinite(s.Loss)));

        string policyDir = Path.Combine(folder.Path, "policy"), referenceDir = Path.Combine(folder.Path, "reference");
        foreach (var dir in new[] { policyDir, referenceDir })
            foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
                Assert.True(File.Exists(Path.Combine(dir, file)), $"{dir}/{file}");

        // The runtime loads both folders like any HuggingFace checkpoint.
        using var tokenizer = HfTokenizer.Load(policyDir);
        using var policy = CausalLanguageModel.Load(policyDir, new ModelLoadOptions("cpu"));
        var ids = tokenizer.Encode("Review of the phone: The battery is long.", addSpecialTokens: true).Ids;
        Assert.Equal(tokenizer.BosTokenId, ids[0]);
        Assert.Equal(ids.Length - 1, policy.ScoreNextTokens([ids])[0].Logprobs.Length);

        // The service's engine serves the pair and reads its beta from qservice-pair.json.
        using var engine = new ScoringEngine(new ModelOptions { PolicyPath = policyDir, ReferencePath = referenceDir, Device = "cpu" },
            new BatchingOptions(), new RequestLimits(), "unused", NullLogger<ScoringEngine>.Instance);
        engine.Start();
        await engine.Ready;
        Assert.Equal(0.25, engine.Info.DefaultBeta);
        var scored = (await engine.ScoreAsync([new ScoreItemInput { Prompt = "Review of the phone:", Response = " The battery is long.", AppendEos = true }],
            new ScoreOptions(), default))[0];
        Assert.Equal(scored.TokenIds.Length, scored.Credits.Length);
        Assert.Equal(tokenizer.EosTokenId, scored.TokenIds[^1]);
        Assert.Equal(scored.Credits.Sum(c => (double)c), scored.Reward, 5);
    }

    [Fact]
    public void SameSeed_SameTokenizerAndWeights()
    {
        using var a = new TempFolder();
        using var b = new TempFolder();
        var options = DemoTrainingOptions.Tiny(new DemoTrainingOptions());
        new DemoTrainer(options, TextWriter.Null).Run(a.Path);
        new DemoTrainer(options, TextWriter.Null).Run(b.Path);
        foreach (var file in new[] { "reference/tokenizer.json", "reference/model.safetensors", "policy/model.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a.Path, file)), File.ReadAllBytes(Path.Combine(b.Path, file)));
    }
}
