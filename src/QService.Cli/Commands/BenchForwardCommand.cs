using System.CommandLine;
using System.Diagnostics;
using QService.Runtime.Models;
using QService.Runtime.Scoring;
using static TorchSharp.torch;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench-forward`: scored tokens per second of a randomly initialised ~100M-parameter Llama on
/// batches of fixed-length sequences, next to this machine's measured float32 matmul rate, as the fraction
/// of that peak the forward pass achieves (FLOPs counted as 2 × matmul parameters × tokens).
/// </summary>
static class BenchForwardCommand
{
    public static Command Create()
    {
        var batch = new Option<int>("--batch") { Description = "sequences per forward pass", DefaultValueFactory = _ => 8 };
        var length = new Option<int>("--length") { Description = "tokens per sequence", DefaultValueFactory = _ => 256 };
        var repeats = new Option<int>("--repeats") { Description = "timed forward passes (the median is reported)", DefaultValueFactory = _ => 5 };
        var dtype = new Option<string>("--dtype") { Description = "compute dtype: float32, bfloat16 or float16", DefaultValueFactory = _ => "float32" };
        var threads = new Option<int>("--threads") { Description = "LibTorch intra-op threads (0 = LibTorch default)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("bench-forward", "Benchmark the scoring forward pass against the machine's matmul peak.") { batch, length, repeats, dtype, threads };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(batch), r.GetValue(length), r.GetValue(repeats), r.GetValue(dtype)!, r.GetValue(threads))));
        return cmd;
    }

    /// <summary>Llama shape of the ~100M-parameter models in shared/notes/performance-facts.md.</summary>
    public static ModelConfig BenchConfig() => new()
    {
        Architecture = "LlamaForCausalLM", ModelType = "llama", VocabSize = 32000, HiddenSize = 768, NumHiddenLayers = 12,
        NumAttentionHeads = 12, NumKeyValueHeads = 12, HeadDim = 64, IntermediateSize = 2048, MaxPositionEmbeddings = 2048,
        NormEps = 1e-5,
    };

    static int Execute(int batch, int length, int repeats, string dtype, int threads)
    {
        if (batch < 1 || length < 2 || repeats < 1) throw new ArgumentException("--batch >= 1, --length >= 2 and --repeats >= 1");
        if (threads > 0) set_num_threads(threads);
        var config = BenchConfig();
        using var model = CausalLanguageModel.CreateRandom(config, seed: 1, new ModelLoadOptions("cpu", dtype));
        long embedding = (long)config.VocabSize * config.HiddenSize;
        long matmulParams = model.ParameterCount - embedding; // the input embedding is a lookup, not a matmul
        var rng = new Random(1);
        int[][] seqs = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, length).Select(_ => rng.Next(config.VocabSize)).ToArray()).ToArray();

        Console.WriteLine($"model: Llama, {model.ParameterCount / 1e6:F1}M parameters ({matmulParams / 1e6:F1}M in matmuls), {dtype}, {get_num_threads()} threads");
        Console.WriteLine($"input: {batch} x {length} tokens per forward pass");
        double peak = MeasureMatmulPeak(dtype == "float32" ? ScalarType.Float32 : TorchSharp.torch.ScalarType.BFloat16);

        model.ScoreNextTokens(seqs); // warm-up (allocator, kernels)
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            model.ScoreNextTokens(seqs);
            times.Add(sw.Elapsed.TotalSeconds);
        }
        double median = times.Order().ElementAt(times.Count / 2);
        double tokens = (double)batch * length;
        double flops = 2.0 * matmulParams * tokens;
        double achieved = flops / median;
        Console.WriteLine($"forward: median {median * 1000:F0} ms over {repeats} runs -> {tokens / median:F0} scored tokens/s");
        Console.WriteLine($"matmul peak ({dtype}, best square matmul 1024-4096, this run): {peak / 1e9:F1} GFLOP/s");
        Console.WriteLine($"achieved: {achieved / 1e9:F1} GFLOP/s = {achieved / peak:P1} of the measured matmul peak");
        return 0;
    }

    /// <summary>
    /// The best rate LibTorch reaches on large square matmuls (1024, 2048, 4096; best of 3 each): the
    /// ceiling a forward pass can approach on this machine, measured in the same run as the forward pass.
    /// </summary>
    static double MeasureMatmulPeak(ScalarType dtype)
    {
        using var inference = inference_mode();
        double best = 0;
        foreach (int n in new[] { 1024, 2048, 4096 })
        {
            using var scope = NewDisposeScope();
            var a = randn([n, n]).to(dtype);
            var b = randn([n, n]).to(dtype);
            a.matmul(b).Dispose();
            for (int i = 0; i < 3; i++)
            {
                var sw = Stopwatch.StartNew();
                a.matmul(b).Dispose();
                best = Math.Max(best, 2.0 * n * n * n / sw.Elapsed.TotalSeconds);
            }
        }
        return best;
    }
}
