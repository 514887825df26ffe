using System.Diagnostics;
using System.Text.Json;
using QService.Runtime.Models;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Demo;

/// <summary>Sizes and steps of a demo training run; the defaults make the committed pair.</summary>
public sealed record DemoTrainingOptions
{
    public int Seed { get; init; } = 1;
    public string Loss { get; init; } = "dpo";
    public double Beta { get; init; } = 0.1;
    public int SftExamples { get; init; } = 6000;
    public int SftSteps { get; init; } = 1500;
    public double SftLearningRate { get; init; } = 3e-3;
    public int PreferencePrompts { get; init; } = 8000;
    public int PreferenceEpochs { get; init; } = 3;
    public double PreferenceLearningRate { get; init; } = 2e-4;
    public int BatchSize { get; init; } = 32;
    public int HiddenSize { get; init; } = 64;
    public int Layers { get; init; } = 2;
    public int LogEvery { get; init; } = 50;
    /// <summary>
    /// Draw preference pairs straight from the review grammar instead of from reference samples. Only the tiny
    /// pipeline check uses it: a reference trained for a few steps writes no parseable reviews to rank.
    /// </summary>
    public bool PairsFromGrammar { get; init; }

    /// <summary>A few steps of every stage: seconds, for tests and for checking the pipeline.</summary>
    public static DemoTrainingOptions Tiny(DemoTrainingOptions o) => o with
    {
        SftExamples = 200, SftSteps = 20, PreferencePrompts = 64, PreferenceEpochs = 1, BatchSize = 8, HiddenSize = 32, LogEvery = 5,
        PairsFromGrammar = true,
    };
}

/// <summary>One logged step of preference training.</summary>
public sealed record PreferenceStep(int Step, double Loss, double Accuracy, double Margin, double ChosenLogprob, double RejectedLogprob);

/// <summary>A chosen/rejected pair of token sequences (BOS + prompt + response + EOS) and where the response starts.</summary>
public sealed record TokenPair(int[] Chosen, int[] Rejected, int PromptTokens, int ChosenReward, int RejectedReward);

/// <summary>
/// Trains the demo pair: a byte-level BPE on the review language, a small Llama pretrained on random reviews
/// (the SFT reference), preference pairs sampled from that reference and ranked by the true reward, then the
/// policy trained from the reference with DPO or NCA. Everything is seeded; a line is printed per logged step.
/// </summary>
public sealed class DemoTrainer(DemoTrainingOptions options, TextWriter log)
{
    public const int MaxResponseTokens = 40;

    /// <summary>Runs every stage and writes outDir/reference and outDir/policy (HuggingFace layout) plus metadata.</summary>
    public IReadOnlyList<PreferenceStep> Run(string outDir)
    {
        var sw = Stopwatch.StartNew();
        var rng = new Random(options.Seed);
        torch.manual_seed(options.Seed);
        string referenceDir = Path.Combine(outDir, "reference"), policyDir = Path.Combine(outDir, "policy");

        log.WriteLine($"[{sw.Elapsed:mm\\:ss}] tokenizer: byte-level BPE on {options.SftExamples} sampled reviews");
        var sft = Enumerable.Range(0, options.SftExamples).Select(_ => ReviewLanguage.Sample(rng)).ToList();
        BpeTrainer.Train(sft.Select(r => r.Prompt + r.Response), referenceDir);
        using var tokenizer = HfTokenizer.Load(referenceDir);
        log.WriteLine($"[{sw.Elapsed:mm\\:ss}] vocabulary: {tokenizer.VocabSize} tokens");

        using var reference = CausalLanguageModel.CreateRandom(DemoConfig(tokenizer), options.Seed, new ModelLoadOptions("cpu"), "reference");
        TrainSft(reference.Module, sft.Select(r => Encode(tokenizer, r.Prompt, r.Response)).ToList(), sw);
        reference.SaveAsHuggingFace(referenceDir);

        var pairs = MakePairs(reference, tokenizer, sw);
        if (pairs.Count < options.BatchSize)
            throw new InvalidOperationException($"only {pairs.Count} preference pairs (fewer than a batch); train the reference longer");
        using var policy = CausalLanguageModel.CreateRandom(reference.Config, options.Seed, new ModelLoadOptions("cpu"), "policy");
        var steps = TrainPreference(policy.Module, reference, pairs, options.Loss, sw);
        policy.SaveAsHuggingFace(policyDir);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(referenceDir, f), Path.Combine(policyDir, f), overwrite: true);
        WriteMetadata(policyDir, pairs, steps, sw.Elapsed);
        log.WriteLine($"[{sw.Elapsed:mm\\:ss}] wrote {referenceDir} and {policyDir}");
        return steps;
    }

    ModelConfig DemoConfig(HfTokenizer tokenizer) => new()
    {
        Architecture = "LlamaForCausalLM", ModelType = "llama", VocabSize = tokenizer.VocabSize, HiddenSize = options.HiddenSize,
        NumHiddenLayers = options.Layers, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = options.HiddenSize / 4,
        IntermediateSize = options.HiddenSize * 3, MaxPositionEmbeddings = 128, NormEps = 1e-5,
        BosTokenId = tokenizer.BosTokenId, EosTokenIds = tokenizer.EosTokenId is int e ? [e] : [],
    };

    /// <summary>BOS + prompt + response + EOS, and the number of tokens before the response.</summary>
    public static (int[] Tokens, int PromptTokens) Encode(HfTokenizer tokenizer, string prompt, string response)
    {
        int[] p = tokenizer.Encode(prompt, addSpecialTokens: true).Ids;
        int[] r = tokenizer.Encode(response, addSpecialTokens: false).Ids;
        return ([.. p, .. r, tokenizer.EosTokenId!.Value], p.Length);
    }

    void TrainSft(CausalLm model, List<(int[] Tokens, int PromptTokens)> data, Stopwatch sw)
    {
        model.train();
        using var optimizer = optim.AdamW(model.parameters(), options.SftLearningRate, weight_decay: 0.01);
        var rng = new Random(options.Seed + 1);
        for (int step = 1; step <= options.SftSteps; step++)
        {
            using var scope = NewDisposeScope();
            var batch = Enumerable.Range(0, options.BatchSize).Select(_ => data[rng.Next(data.Count)]).ToList();
            var (logprobs, count) = TokenLogprobSums(model, batch.Select(b => b.Tokens).ToList(), batch.Select(_ => 1).ToList());
            var loss = -logprobs.sum() / count;
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            if (step % options.LogEvery == 0 || step == options.SftSteps)
                log.WriteLine($"[{sw.Elapsed:mm\\:ss}] sft step {step}/{options.SftSteps}  loss {loss.item<float>():F4} nats/token");
        }
        model.eval();
    }

    /// <summary>
    /// Sum over each sequence of log p(token t | tokens before t) for t ≥ firstTarget; padded batch, with grad.
    /// Returns the per-sequence sums and the number of tokens counted.
    /// </summary>
    public static (Tensor Sums, long Count) TokenLogprobSums(CausalLm model, List<int[]> sequences, List<int> firstTargets)
    {
        int batch = sequences.Count, maxLen = sequences.Max(s => s.Length);
        var ids = new long[batch * maxLen];
        var mask = new float[batch * (maxLen - 1)];
        long count = 0;
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < sequences[b].Length; t++) ids[b * maxLen + t] = sequences[b][t];
            for (int t = firstTargets[b]; t < sequences[b].Length; t++, count++) mask[b * (maxLen - 1) + t - 1] = 1;
        }
        var input = tensor(ids, [batch, maxLen]);
        var logits = model.Logits(model.Hidden(input, cache: null));
        var logp = nn.functional.log_softmax(logits.narrow(1, 0, maxLen - 1), -1);
        var targets = input.narrow(1, 1, maxLen - 1).unsqueeze(-1);
        var picked = logp.gather(-1, targets).squeeze(-1) * tensor(mask, [batch, maxLen - 1]);
        return (picked.sum(-1), count);
    }

    /// <summary>Two samples from the reference per prompt, ranked by the true reward; ties are dropped.</summary>
    List<TokenPair> SamplePairs(CausalLanguageModel reference, HfTokenizer tokenizer, Random rng, Stopwatch sw)
    {
        var prompts = Enumerable.Range(0, options.PreferencePrompts)
            .Select(_ => ReviewLanguage.PromptFor(ReviewLanguage.Products[rng.Next(ReviewLanguage.Products.Length)])).ToList();
        var pairs = new List<TokenPair>();
        using var generator = new Generator((ulong)options.Seed + 2);
        const int chunk = 256;
        for (int start = 0; start < prompts.Count; start += chunk)
        {
            var group = prompts.Skip(start).Take(chunk).ToList();
            var a = Sampling.Sample(reference, tokenizer, group, MaxResponseTokens, generator);
            var b = Sampling.Sample(reference, tokenizer, group, MaxResponseTokens, generator);
            for (int i = 0; i < group.Count; i++)
            {
                int ra = ReviewLanguage.Reward(a[i]), rb = ReviewLanguage.Reward(b[i]);
                if (ra == rb) continue;
                var (better, worse, rBetter, rWorse) = ra > rb ? (a[i], b[i], ra, rb) : (b[i], a[i], rb, ra);
                var (chosen, promptTokens) = Encode(tokenizer, group[i], better);
                pairs.Add(new TokenPair(chosen, Encode(tokenizer, group[i], worse).Tokens, promptTokens, rBetter, rWorse));
            }
        }
        log.WriteLine($"[{sw.Elapsed:mm\\:ss}] preference pairs: {pairs.Count} of {prompts.Count} prompts (ties dropped)");
        return pairs;
    }

    /// <summary>
    /// The preference pairs of a run: two reference samples per prompt ranked by the true reward (or grammar
    /// pairs in the tiny check). Seeded on its own, so the report can rebuild the exact pairs from the reference.
    /// </summary>
    public List<TokenPair> MakePairs(CausalLanguageModel reference, HfTokenizer tokenizer, Stopwatch sw)
    {
        var rng = new Random(options.Seed + 10);
        return options.PairsFromGrammar ? GrammarPairs(tokenizer, rng) : SamplePairs(reference, tokenizer, rng, sw);
    }

    List<TokenPair> GrammarPairs(HfTokenizer tokenizer, Random rng) =>
        Enumerable.Range(0, options.PreferencePrompts).Select(_ =>
        {
            var (better, worse) = ReviewLanguage.SamplePair(rng);
            var (chosen, promptTokens) = Encode(tokenizer, better.Prompt, better.Response);
            return new TokenPair(chosen, Encode(tokenizer, worse.Prompt, worse.Response).Tokens, promptTokens,
                ReviewLanguage.Reward(better.Response), ReviewLanguage.Reward(worse.Response));
        }).ToList();

    /// <summary>Initialises the policy from the reference and trains it on the pairs with the given loss.</summary>
    public List<PreferenceStep> TrainPreference(CausalLm policy, CausalLanguageModel reference, List<TokenPair> pairs, string loss, Stopwatch sw)
    {
        using (no_grad())
            foreach (var ((_, p), (_, r)) in policy.named_parameters().Zip(reference.Module.named_parameters()))
                p.copy_(r);
        // Reference log-likelihoods of the responses, once.
        var refChosen = reference.ScoreTokens(pairs.Select(p => p.Chosen).ToList(), pairs.Select(p => p.PromptTokens).ToList())
            .Select(s => s.Logprobs.Sum(x => (double)x)).ToArray();
        var refRejected = reference.ScoreTokens(pairs.Select(p => p.Rejected).ToList(), pairs.Select(p => p.PromptTokens).ToList())
            .Select(s => s.Logprobs.Sum(x => (double)x)).ToArray();

        policy.train();
        using var optimizer = optim.AdamW(policy.parameters(), options.PreferenceLearningRate, weight_decay: 0.0);
        var rng = new Random(options.Seed + 3);
        var steps = new List<PreferenceStep>();
        int step = 0, total = options.PreferenceEpochs * (pairs.Count / options.BatchSize);
        for (int epoch = 0; epoch < options.PreferenceEpochs; epoch++)
        {
            var order = Enumerable.Range(0, pairs.Count).OrderBy(_ => rng.Next()).ToArray();
            for (int start = 0; start + options.BatchSize <= order.Length; start += options.BatchSize)
            {
                using var scope = NewDisposeScope();
                var idx = order[start..(start + options.BatchSize)];
                var seqs = idx.Select(i => pairs[i].Chosen).Concat(idx.Select(i => pairs[i].Rejected)).ToList();
                var firsts = idx.Select(i => pairs[i].PromptTokens).Concat(idx.Select(i => pairs[i].PromptTokens)).ToList();
                var (sums, _) = TokenLogprobSums(policy, seqs, firsts);
                var chosen = sums.narrow(0, 0, idx.Length);
                var rejected = sums.narrow(0, idx.Length, idx.Length);
                var rw = options.Beta * (chosen - tensor(idx.Select(i => (float)refChosen[i]).ToArray()));
                var rl = options.Beta * (rejected - tensor(idx.Select(i => (float)refRejected[i]).ToArray()));
                var lossValue = PreferenceLoss.Compute(loss, rw, rl).mean();
                optimizer.zero_grad();
                lossValue.backward();
                optimizer.step();
                step++;
                var record = new PreferenceStep(step, lossValue.item<float>(), (rw > rl).to(ScalarType.Float32).mean().item<float>(),
                    (rw - rl).mean().item<float>(), chosen.mean().item<float>(), rejected.mean().item<float>());
                steps.Add(record);
                if (step % options.LogEvery == 0 || step == total)
                    log.WriteLine($"[{sw.Elapsed:mm\\:ss}] {loss} step {step}/{total}  loss {record.Loss:F4}  reward accuracy {record.Accuracy:P0}  " +
                                  $"margin {record.Margin:+0.000;-0.000}  " +
                                  $"log pi(chosen) {record.ChosenLogprob:F2}  log pi(rejected) {record.RejectedLogprob:F2}");
            }
        }
        policy.eval();
        return steps;
    }

    void WriteMetadata(string policyDir, List<TokenPair> pairs, List<PreferenceStep> steps, TimeSpan elapsed)
    {
        var metadata = new Dictionary<string, object>
        {
            ["beta"] = options.Beta,
            ["loss"] = options.Loss,
            ["seed"] = options.Seed,
            ["data"] = options.PairsFromGrammar
                ? "review language, tiny pipeline check: preference pairs drawn from the grammar"
                : $"review language (src/QService.Demo/ReviewLanguage.cs): {options.SftExamples} random reviews for SFT; " +
                  $"{pairs.Count} preference pairs from two reference samples for each of {options.PreferencePrompts} prompts, ranked by the true reward",
            ["options"] = options,
            ["final_step"] = steps[^1],
            ["training_seconds"] = Math.Round(elapsed.TotalSeconds),
        };
        File.WriteAllText(Path.Combine(policyDir, "qservice-pair.json"),
            JsonSerializer.Serialize(metadata, new JsonSerializerOptions { WriteIndented = true }));
    }
}
