using System.Text.Json;
using QService.Runtime.Scoring;
using TorchSharp;
using static QService.Runtime.Tests.Models.HfParityTests;

namespace QService.Runtime.Tests.Scoring;

public class ScoringTests
{
    internal static int[][] Inputs(string model) =>
        JsonDocument.Parse(File.ReadAllText(Fixture(model, "expected.json"))).RootElement
            .GetProperty("input_ids").EnumerateArray().Select(s => s.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();

    [Fact]
    public void ChunkedLogSoftmax_EqualsOneChunk()
    {
        string folder = Fixtures.Path("hf-reference", "llama-gqa");
        using var whole = CausalLanguageModel.Load(folder, new ModelLoadOptions("cpu"));
        // 3 rows of 320 float32 logits per chunk: the 40-token sequences span many chunks.
        using var chunked = CausalLanguageModel.Load(folder, new ModelLoadOptions("cpu", LogitChunkBytes: 3 * 320 * 4));
        var a = whole.ScoreNextTokens(Inputs("llama-gqa"));
        var b = chunked.ScoreNextTokens(Inputs("llama-gqa"));
        // Two separate passes: on a loaded machine MKL may split a matmul over fewer threads in one of them, which
        // moves the last float digits (2.4e-4 seen once on a log-probability of -8.35). A chunking error would be whole units.
        for (int i = 0; i < a.Count; i++) AssertClose(a[i].Logprobs, b[i].Logprobs, 1e-3, $"seq {i}");
    }

    [Fact]
    public void DpoPair_CreditsMatchReference()
    {
        var root = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "pair_expected.json"))).RootElement;
        double beta = root.GetProperty("beta").GetDouble();
        using var policy = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "policy"), new ModelLoadOptions("cpu"));
        using var reference = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "reference"), new ModelLoadOptions("cpu"));
        foreach (var pair in root.GetProperty("pairs").EnumerateArray())
        {
            int[] prompt = pair.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int[] response = pair.GetProperty("response_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int[] seq = [.. prompt, .. response];
            var lpPolicy = policy.ScoreNextTokens([seq])[0].Logprobs[(prompt.Length - 1)..];
            var lpRef = reference.ScoreNextTokens([seq])[0].Logprobs[(prompt.Length - 1)..];
            double[] expectedCredits = pair.GetProperty("credits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            double[] expectedQ = pair.GetProperty("cumulative_q").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            double q = 0;
            for (int j = 0; j < response.Length; j++)
            {
                Assert.True(Math.Abs(lpPolicy[j] - pair.GetProperty("policy_logprobs")[j].GetDouble()) <= 1e-4);
                Assert.True(Math.Abs(lpRef[j] - pair.GetProperty("reference_logprobs")[j].GetDouble()) <= 1e-4);
                double credit = beta * ((double)lpPolicy[j] - lpRef[j]);
                q += credit;
                Assert.True(Math.Abs(credit - expectedCredits[j]) <= 2e-5, $"credit {j}: {credit} vs {expectedCredits[j]}");
                Assert.True(Math.Abs(q - expectedQ[j]) <= 2e-5 * (j + 1), $"Q {j}: {q} vs {expectedQ[j]}");
            }
            Assert.True(Math.Abs(q - pair.GetProperty("sequence_total").GetProperty("credit").GetDouble()) <= 2e-5 * response.Length);
        }
    }

    [Fact]
    public void HundredForwardCalls_LeaveNoLiveTensors()
    {
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "qwen2"), new ModelLoadOptions("cpu"));
        var inputs = Inputs("qwen2");
        // Warm up once so lazily created process-wide state is not counted.
        model.ScoreNextTokens(inputs, includeLastLogits: true);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 100; i++)
        {
            model.ScoreNextTokens(i % 2 == 0 ? inputs : [inputs[i % 3]], includeLastLogits: i % 3 == 0);
            if (i % 10 == 0)
            {
                var head = model.Extend([new PassInput(inputs[2][..10], FirstTarget: 1, NewBlockSize: 5)])[0].NewBlocks;
                model.Extend([new PassInput(inputs[2], FirstTarget: 10, head, PastLength: 9, CachedLength: 10)]);
                foreach (var block in head) block.Dispose();
            }
        }
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.Equal(before, after);
    }

    [Fact]
    public void BadTokens_AreRefusedWithTheirPosition()
    {
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "gpt2"), new ModelLoadOptions("cpu"));
        var e = Assert.Throws<ArgumentException>(() => model.ScoreNextTokens([[1, 2, 3], [4, 288, 5]]));
        Assert.Contains("sequence 1, position 1", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.ScoreNextTokens([Enumerable.Repeat(1, 65).ToArray()]));
        Assert.Contains("65 tokens", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.ScoreNextTokens([[]]));
        Assert.Contains("empty", e.Message);
        Assert.Equal(2, model.ScoreNextTokens([[1, 2, 3]])[0].Logprobs.Length); // still serving
    }
}
