using System.Text.Json;
using QService.Runtime.Scoring;
using Xunit.Abstractions;

namespace QService.Runtime.Tests.Models;

/// <summary>Our log-probabilities against HuggingFace transformers' on the reference checkpoints.</summary>
public class HfParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> ModelNames => new()
    {
        "llama-gqa", "llama-tied-rope-linear", "qwen2", "mistral", "gpt2",
        "qwen3-tied", "olmo2", "llama3-rope", "gemma2-softcap", "gemma3-text", "phi3-partial-rotary", "phi3-longrope", "qwen2-window",
    };

    /// <summary>The fixtures of tests/fixtures/hf-reference-2026 (the rest are in hf-reference).</summary>
    static readonly string[] Fixtures2026 =
        ["qwen3-tied", "olmo2", "llama3-rope", "gemma2-softcap", "gemma3-text", "phi3-partial-rotary", "phi3-longrope", "qwen2-window"];

    /// <summary>A reference model's folder (or a file in it), whichever fixture set holds it; missing fails.</summary>
    public static string Fixture(string name, params string[] file) =>
        Fixtures.Path([Fixtures2026.Contains(name) ? "hf-reference-2026" : "hf-reference", name, .. file]);

    sealed record Expected(string architecture, int[][] input_ids, double[][] next_token_logprobs, double[][] last_logits,
        double[] sum_next_token_logprob, int[][] greedy_next_tokens);

    static Expected LoadExpected(string model) =>
        JsonSerializer.Deserialize<Expected>(File.ReadAllText(Fixture(model, "expected.json")))!;

    [Theory, MemberData(nameof(ModelNames))]
    public void NextTokenLogprobs_MatchTransformers(string name)
    {
        var expected = LoadExpected(name);
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        Assert.Equal(expected.architecture, model.Config.Architecture);
        double maxDelta = 0;
        for (int s = 0; s < expected.input_ids.Length; s++)
        {
            var result = model.ScoreNextTokens([expected.input_ids[s]], includeLastLogits: true)[0];
            Assert.Equal(expected.next_token_logprobs[s].Length, result.Logprobs.Length);
            maxDelta = Math.Max(maxDelta, result.Logprobs.Select((l, t) => Math.Abs(l - expected.next_token_logprobs[s][t])).Max());
            for (int t = 0; t < result.Logprobs.Length; t++)
                Assert.True(Math.Abs(result.Logprobs[t] - expected.next_token_logprobs[s][t]) <= 1e-4,
                    $"{name} seq {s} pos {t}: ours {result.Logprobs[t]} vs HF {expected.next_token_logprobs[s][t]}");
            Assert.True(Math.Abs(result.Logprobs.Sum(x => (double)x) - expected.sum_next_token_logprob[s]) <= 1e-4 * result.Logprobs.Length);
            for (int v = 0; v < expected.last_logits[s].Length; v++)
                Assert.True(Math.Abs(result.LastLogits![v] - expected.last_logits[s][v]) <= 1e-4,
                    $"{name} seq {s} last logit {v}: ours {result.LastLogits[v]} vs HF {expected.last_logits[s][v]}");
        }
        output.WriteLine($"{name}: max |Δ logprob| = {maxDelta:E2}");
    }

    [Theory, MemberData(nameof(ModelNames))]
    public void GreedyContinuation_MatchesTransformers(string name)
    {
        var expected = LoadExpected(name);
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        for (int s = 0; s < expected.input_ids.Length; s++)
        {
            var tokens = expected.input_ids[s].ToList();
            var greedy = new List<int>();
            for (int i = 0; i < expected.greedy_next_tokens[s].Length; i++)
            {
                var last = model.ScoreNextTokens([tokens.ToArray()], includeLastLogits: true)[0].LastLogits!;
                int next = Array.IndexOf(last, last.Max());
                greedy.Add(next);
                tokens.Add(next);
            }
            Assert.Equal(expected.greedy_next_tokens[s], greedy.ToArray());
        }
    }

    [Theory, MemberData(nameof(ModelNames))]
    public void Batch_EqualsEachSequenceAlone(string name)
    {
        var expected = LoadExpected(name);
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        var batched = model.ScoreNextTokens(expected.input_ids, includeLastLogits: true);
        for (int s = 0; s < expected.input_ids.Length; s++)
        {
            var alone = model.ScoreNextTokens([expected.input_ids[s]], includeLastLogits: true)[0];
            AssertClose(alone.Logprobs, batched[s].Logprobs, 1e-5, $"{name} seq {s} logprobs");
            AssertClose(alone.LastLogits!, batched[s].LastLogits!, 1e-4, $"{name} seq {s} last logits");
        }
    }

    [Theory, MemberData(nameof(ModelNames))]
    public void IncrementalWithCachedBlocks_EqualsFullRecompute(string name)
    {
        var expected = LoadExpected(name);
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        var seq = expected.input_ids[^1];
        var full = model.ScoreNextTokens([seq])[0].Logprobs;
        var cached = new List<ICachedBlock>();
        var pieces = new List<float>();
        // Uneven steps: a prefix, single tokens, then a chunk; blocks of one position, so that any cut can be continued. Each
        // pass turns its positions as the whole sequence (longrope: the regime its blocks are reused in; see ModelConfig.RopeRegime).
        int[] cuts = [7, 8, 9, 20, seq.Length];
        int at = 0;
        foreach (int cut in cuts)
        {
            // As the prefix cache asks: the last cached position is recomputed, its output predicting the first new token.
            var pass = model.Extend([new PassInput(seq[..cut], FirstTarget: Math.Max(1, at), cached, PastLength: Math.Max(0, at - 1),
                CachedLength: at, NewBlockSize: 1, RopeLength: seq.Length)])[0];
            pieces.AddRange(pass.Logprobs);
            cached.AddRange(pass.NewBlocks);
            at = cut;
        }
        Assert.Equal(seq.Length, cached.Count);
        // Passes of 1-3 rows run other matmul kernels than the full pass (MKL picks them by shape, and with its
        // vendor override on an AVX2-only AMD EPYC one logprob of -10.02 differed by 1.4e-5): float32 rounding of
        // the same function, proportional to the value, on top of the absolute 1e-5.
        AssertClose(full, pieces.ToArray(), 1e-5, $"{name} incremental", relative: 2e-6);
        foreach (var block in cached) block.Dispose();
    }

    internal static void AssertClose(float[] a, float[] b, double tol, string what, double relative = 0)
    {
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
        {
            double allowed = tol + relative * Math.Abs(a[i]);
            Assert.True(Math.Abs(a[i] - b[i]) <= allowed, $"{what} [{i}]: {a[i]} vs {b[i]} (tolerance {allowed})");
        }
    }
}
