using System.Text.Json;
using QService.Runtime.Scoring;

namespace QService.Runtime.Tests.Adapters;

/// <summary>
/// The PEFT cases of tests/fixtures/hf-reference-2026/lora/&lt;case&gt;/ (base/, adapter/, expected.json; see its README):
/// every case folder found there, so that a case added to the folder is tested without naming it here.
/// </summary>
public static class LoraFixtures
{
    /// <summary>The cases every checkout must have (the others are found in the folder).</summary>
    public static readonly string[] Known =
    [
        "llama-qv-r8", "qwen2-all-linear-rslora", "llama-rank-alpha-patterns", "mistral-regex", "mistral-layers-to-transform",
        "qwen3-modules-to-save", "qwen3-tied-embed-to-save", "gpt2-fan-in-fan-out", "phi3-fused", "gemma2-all-linear",
    ];

    public static string Root => Fixtures.Path("hf-reference-2026", "lora");

    /// <summary>The case folders' names: those holding an adapter/ (refused/ and generator/ hold none); each must have its expected.json.</summary>
    public static string[] CaseList() => [.. Directory.GetDirectories(Root).Where(d => Directory.Exists(Path.Combine(d, "adapter")))
        .Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal)];

    public static TheoryData<string> Cases() => new(CaseList());

    public static string Base(string name) => Fixtures.Path("hf-reference-2026", "lora", name, "base");

    public static string Adapter(string name) => Fixtures.Path("hf-reference-2026", "lora", name, "adapter");

    public sealed record Pair(int[] prompt_ids, int[] response_ids, double[] policy_logprobs, double[] reference_logprobs, double[] credits,
        double[] cumulative_q, double reward);

    public sealed record ModuleScaling(int r, double lora_alpha, double scaling);

    public sealed record Expected(string @case, string base_architecture, double beta, Dictionary<string, ModuleScaling> lora_modules,
        int[][] input_ids, double[][] reference_next_token_logprobs, double[][] policy_next_token_logprobs, Pair[] pairs);

    /// <summary>A case's expected.json; unreadable or incomplete fails the test.</summary>
    public static Expected Load(string name)
    {
        string path = Fixtures.Path("hf-reference-2026", "lora", name, "expected.json");
        var expected = JsonSerializer.Deserialize<Expected>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path}: empty");
        if (expected.input_ids is null || expected.policy_next_token_logprobs is null || expected.reference_next_token_logprobs is null
            || expected.pairs is null || expected.lora_modules is null)
            throw new InvalidDataException($"{path}: missing input_ids, next-token log-probs, pairs or lora_modules");
        return expected;
    }

    /// <summary>The base (= reference) and the adapter over it (= policy), sharing one module.</summary>
    public sealed class Loaded : IDisposable
    {
        public CausalLanguageModel Reference { get; }
        public CausalLanguageModel Policy { get; }
        public Expected Expected { get; }

        public Loaded(string name)
        {
            Expected = Load(name);
            Reference = CausalLanguageModel.Load(Base(name), new ModelLoadOptions("cpu"));
            Policy = CausalLanguageModel.LoadAdapter(Reference, Adapter(name));
        }

        public void Dispose()
        {
            Policy.Dispose();
            Reference.Dispose();
        }
    }
}
