using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using QService.Runtime.Diagnostics;
using QService.Runtime.Models;
using QService.Runtime.Scoring;
using QService.Runtime.Torch;
using static TorchSharp.torch;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench-forward`: scored tokens per second of the scoring forward pass (a randomly initialised
/// 134M-parameter Llama, or a model folder) at several batch shapes, next to this machine's matmul peak
/// measured in the same run (FLOPs counted as 2 × matmul parameters × tokens), with resident memory, page
/// faults per pass and which CPU speed fixes are on. `--compare` reruns the same in a child process with the
/// fixes off and prints both side by side: the fixes are process-wide and settle at the first matmul, so
/// they cannot be switched off inside one process.
/// </summary>
static class BenchForwardCommand
{
    public static Command Create()
    {
        var shapes = new Option<string>("--shapes")
            { Description = "batch x length of each forward pass to time, comma-separated", DefaultValueFactory = _ => "1x128,8x256,32x128" };
        var batch = new Option<int?>("--batch") { Description = "sequences per forward pass (with --length: one shape instead of --shapes)" };
        var length = new Option<int?>("--length") { Description = "tokens per sequence (with --batch)" };
        var repeats = new Option<int>("--repeats") { Description = "timed forward passes per shape (the median is reported)", DefaultValueFactory = _ => 3 };
        var dtype = new Option<string>("--dtype") { Description = "compute dtype: float32, bfloat16 or float16", DefaultValueFactory = _ => "float32" };
        var threads = new Option<int>("--threads") { Description = "LibTorch intra-op threads (0 = one per physical core)", DefaultValueFactory = _ => 0 };
        var model = new Option<string?>("--model") { Description = "HuggingFace model folder to time instead of the random 134M Llama" };
        var fixes = new Option<string>("--speed-fixes")
        {
            Description = "which CPU speed fixes are on: on (default, both), off, mkl-off (malloc only) or malloc-off (MKL vendor override only)",
            DefaultValueFactory = _ => "on"
        };
        var compare = new Option<bool>("--compare") { Description = "also run with other speed fixes (--compare-with, in a child process) and print both" };
        var compareWith = new Option<string>("--compare-with")
            { Description = "the speed fixes of the --compare run: off (default), mkl-off or malloc-off", DefaultValueFactory = _ => "off" };
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of the table" };
        var cmd = new Command("bench-forward", "Benchmark the scoring forward pass against the machine's matmul peak.")
            { shapes, batch, length, repeats, dtype, threads, model, fixes, compare, compareWith, json };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var shapeList = r.GetValue(batch) is int b || r.GetValue(length) is int
                ? [(r.GetValue(batch) ?? 8, r.GetValue(length) ?? 256)]
                : ParseShapes(r.GetValue(shapes)!);
            string fixesName = r.GetValue(fixes)!;
            ParseFixes("--speed-fixes", fixesName);
            string other = r.GetValue(compareWith)!;
            ParseFixes("--compare-with", other);
            return Execute(new BenchSettings(shapeList, r.GetValue(repeats), r.GetValue(dtype)!, r.GetValue(threads), r.GetValue(model), fixesName),
                r.GetValue(compare) ? other : null, r.GetValue(json));
        }));
        return cmd;
    }

    sealed record BenchSettings((int Batch, int Length)[] Shapes, int Repeats, string Dtype, int Threads, string? Model, string FixesName)
    {
        public CpuSpeedOptions Fixes => ParseFixes("--speed-fixes", FixesName);
    }

    static CpuSpeedOptions ParseFixes(string option, string value) => value switch
    {
        "on" => new CpuSpeedOptions(),
        "off" => CpuSpeedOptions.Off,
        "mkl-off" => new CpuSpeedOptions(MklVendorOverride: false),
        "malloc-off" => new CpuSpeedOptions(KeepFreedMemory: false),
        _ => throw new ArgumentException($"{option}: '{value}' is not on, off, mkl-off or malloc-off"),
    };

    /// <summary>Llama shape of the ~100M-parameter models in shared/notes/performance-facts.md.</summary>
    public static ModelConfig BenchConfig() => new()
    {
        Architecture = "LlamaForCausalLM", ModelType = "llama", VocabSize = 32000, HiddenSize = 768, NumHiddenLayers = 12,
        NumAttentionHeads = 12, NumKeyValueHeads = 12, HeadDim = 64, IntermediateSize = 2048, MaxPositionEmbeddings = 2048,
        NormEps = 1e-5,
    };

    static (int, int)[] ParseShapes(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
        {
            var parts = s.Split('x');
            if (parts.Length != 2 || !int.TryParse(parts[0], out int b) || !int.TryParse(parts[1], out int l))
                throw new ArgumentException($"--shapes: '{s}' is not BATCHxLENGTH");
            return (b, l);
        }).ToArray();

    /// <param name="compareWith">the --speed-fixes value of the comparison run in a child process, or null for none</param>
    static int Execute(BenchSettings settings, string? compareWith, bool json)
    {
        if (settings.Shapes.Length == 0 || settings.Shapes.Any(s => s.Batch < 1 || s.Length < 2) || settings.Repeats < 1)
            throw new ArgumentException("every shape needs batch >= 1 and length >= 2, and --repeats >= 1");
        // First, before anything touches LibTorch: the fixes must precede the first matmul.
        var speed = TorchEnvironment.Initialize(settings.Fixes);
        var result = Measure(settings, speed);
        ForwardBench? baseline = compareWith is null ? null : RunChild(compareWith);
        if (json) Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions));
        else Print(result, baseline);
        return 0;
    }

    static ForwardBench Measure(BenchSettings s, CpuSpeedReport speed)
    {
        TorchEnvironment.ApplyThreads(s.Threads);
        using var model = LoadModel(s.Model, s.Dtype, seed: 1);
        var config = model.Config;
        long embedding = (long)config.VocabSize * config.HiddenSize;
        // The input embedding is a lookup, not a matmul; a tied one is also the output projection.
        long matmulParams = model.ParameterCount - (config.TieWordEmbeddings ? 0 : embedding);
        var dtype = TorchEnvironment.ParseDtype(s.Dtype);
        double peak = MeasureMatmulPeak(dtype) / 1e9;
        var rng = new Random(1);
        var shapes = new List<ShapeResult>();
        foreach (var (batch, length) in s.Shapes)
        {
            if (length > config.MaxPositionEmbeddings) throw new ArgumentException($"length {length} is over the model context {config.MaxPositionEmbeddings}");
            int[][] seqs = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, length).Select(_ => rng.Next(config.VocabSize)).ToArray()).ToArray();
            WarmUp(model, seqs);
            long rssWarm = ProcessStats.ResidentBytes(), nativeWarm = NativeBytes();
            long faults0 = ProcessStats.MinorFaults();
            var times = new List<double>();
            for (int i = 0; i < s.Repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                model.ScoreNextTokens(seqs);
                times.Add(sw.Elapsed.TotalSeconds);
            }
            long faults = ProcessStats.MinorFaults() - faults0;
            // Measured as after the warm-up, after a full collection: the managed heap's garbage (the gen0 budget
            // fills between collections) is not what this column is about; native memory kept or leaked is.
            Collect();
            double median = times.Order().ElementAt(times.Count / 2);
            double tokens = (double)batch * length;
            double gflops = 2.0 * matmulParams * tokens / median / 1e9;
            shapes.Add(new ShapeResult(batch, length, median * 1000, tokens / median, tokens / median / 2, gflops, gflops / peak,
                faults / s.Repeats, rssWarm, ProcessStats.ResidentBytes(), nativeWarm, NativeBytes()));
        }
        // Measured again after the passes, and the better taken: on this shared machine a single measurement
        // sometimes catches a descheduled thread (bfloat16 especially came out at half its rate in some runs).
        double peakAfter = MeasureMatmulPeak(dtype) / 1e9;
        if (peakAfter > peak) shapes = [.. shapes.Select(r => r with { FractionOfPeak = r.Gflops / peakAfter })];
        peak = Math.Max(peak, peakAfter);
        var precision = s.Dtype == "float32" ? null : MeasurePrecision(s.Model, s.Dtype);
        // A reduced-precision dtype's matmuls against float32's, on the same machine in the same run: what it buys, or costs where it is emulated.
        double? float32Peak = dtype == ScalarType.Float32 ? null : MeasureMatmulPeak(ScalarType.Float32) / 1e9;
        return new ForwardBench(s.Model ?? "random Llama 134M", model.ParameterCount, matmulParams, s.Dtype, get_num_threads(),
            CpuFeatures.Here.Describe(), CpuFeatures.Here.NativeBFloat16, s.FixesName, speed.Summary, [.. speed.Lines], peak,
            float32Peak, [.. shapes], precision);
    }

    /// <summary>The model in float32 (random with the seed, or from the folder), converted when another dtype is asked for.</summary>
    static CausalLanguageModel LoadModel(string? folder, string dtype, long seed)
    {
        var exact = folder is null
            ? CausalLanguageModel.CreateRandom(BenchConfig(), seed, new ModelLoadOptions("cpu"))
            : CausalLanguageModel.Load(folder, new ModelLoadOptions("cpu"));
        if (TorchEnvironment.ParseDtype(dtype) == ScalarType.Float32) return exact;
        using (exact) return exact.ConvertTo(dtype);
    }

    /// <summary>
    /// The reduced-precision mode's error against float32 on the same weights, over 4 x 128 random tokens:
    /// log-probabilities of the benchmarked model, and credits (beta 0.1) of a pair when it is the random one
    /// (policy seed 1, reference seed 2).
    /// </summary>
    static PrecisionError MeasurePrecision(string? folder, string dtype)
    {
        var rng = new Random(2);
        float[] Logprobs(CausalLanguageModel m, int[][] seqs) => [.. m.ScoreNextTokens(seqs).SelectMany(r => r.Logprobs)];
        (float[] Exact, float[] Low) Both(long seed, int[][] seqs)
        {
            using var exact = LoadModel(folder, "float32", seed);
            using var low = exact.ConvertTo(dtype);
            return (Logprobs(exact, seqs), Logprobs(low, seqs));
        }
        int vocab, length;
        using (var probe = LoadModel(folder, "float32", 1)) { vocab = probe.Config.VocabSize; length = Math.Min(128, probe.Config.MaxPositionEmbeddings); }
        int[][] seqs = [.. Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, length).Select(_ => rng.Next(vocab)).ToArray())];
        var policy = Both(1, seqs);
        double[] logprobError = [.. policy.Exact.Zip(policy.Low, (a, b) => Math.Abs((double)a - b))];
        double? maxCredit = null, meanCredit = null;
        if (folder is null)
        {
            const double beta = 0.1;
            var reference = Both(2, seqs);
            double[] creditError = [.. Enumerable.Range(0, policy.Exact.Length).Select(i =>
                Math.Abs(beta * ((policy.Exact[i] - reference.Exact[i]) - (policy.Low[i] - reference.Low[i]))))];
            (maxCredit, meanCredit) = (creditError.Max(), creditError.Average());
        }
        return new PrecisionError(logprobError.Max(), logprobError.Average(), maxCredit, meanCredit);
    }

    /// <summary>
    /// The allocator's heap and MKL's buffers settle over a few passes of a new shape: at least two passes
    /// and one second before timing, as a server in steady state would be. Then a full collection: TorchSharp
    /// makes a few small native objects per pass that only the garbage collector frees (Scalars it creates
    /// internally), and until the first collection they fragment the native heap.
    /// </summary>
    static void WarmUp(CausalLanguageModel model, int[][] seqs)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 2 || sw.Elapsed.TotalSeconds < 1; i++) model.ScoreNextTokens(seqs);
        Collect();
    }

    /// <summary>
    /// Resident memory outside the managed heap: what LibTorch and malloc hold. The GC keeps the memory of a
    /// collection committed for a while, so resident memory alone moves by tens of MB with managed garbage.
    /// </summary>
    static long NativeBytes() => ProcessStats.ResidentBytes() - GC.GetGCMemoryInfo().TotalCommittedBytes;

    static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    static ForwardBench RunChild(string fixes)
    {
        var args = new List<string>();
        var mine = Environment.GetCommandLineArgs().Skip(1).ToList();
        for (int i = 0; i < mine.Count; i++)
        {
            if (mine[i] is "--compare" or "--json") continue;
            if (mine[i] is "--speed-fixes" or "--compare-with") { i++; continue; }
            args.Add(mine[i]);
        }
        args.AddRange(["--speed-fixes", fixes, "--json"]);
        return JsonSerializer.Deserialize<ForwardBench>(SelfCommand.Run(args), JsonOptions)!;
    }

    static void Print(ForwardBench r, ForwardBench? off)
    {
        Console.WriteLine($"model: {r.Model}, {r.Parameters / 1e6:F1}M parameters ({r.MatmulParameters / 1e6:F1}M in matmuls), {r.Dtype}, {r.Threads} threads");
        Console.WriteLine($"CPU: {r.Cpu}; native bfloat16: {(r.NativeBfloat16 ? "yes" : "no")}; speed fixes: {r.SpeedFixes}");
        foreach (var line in r.SpeedFixLines) Console.WriteLine($"  {line}");
        Console.WriteLine($"matmul peak ({r.Dtype}, best square matmul 256-4096 within {PeakBudgetSeconds:F0} s, this run): {r.PeakGflops:F1} GFLOP/s" +
            (off is null ? "" : $"; with --speed-fixes {off.FixesSetting}: {off.PeakGflops:F1} GFLOP/s"));
        if (r.Float32PeakGflops is double f32)
            Console.WriteLine($"float32 matmul peak, same run: {f32:F1} GFLOP/s: {r.Dtype} runs matmuls at {r.PeakGflops / f32:F2}x float32's rate here");
        Console.WriteLine();
        Console.WriteLine("| fixes | batch x length | ms/pass | tokens/s per model | pair tokens/s | GFLOP/s | % of peak | page faults/pass | RSS MiB |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var run in new[] { off, r })
        {
            if (run is null) continue;
            foreach (var s in run.Shapes)
                Console.WriteLine($"| {run.FixesSetting} | {s.Batch} x {s.Length} | {s.MedianMs:F0} | {s.ModelTokensPerSecond:F0} | " +
                    $"{s.PairTokensPerSecond:F0} | {s.Gflops:F1} | " +
                    $"{s.FractionOfPeak:P1} | {s.PageFaultsPerPass:N0} | {s.ResidentBytesEnd / (1024.0 * 1024):F0} |");
        }
        if (r.Precision is { } p)
        {
            Console.WriteLine();
            Console.WriteLine($"{r.Dtype} against float32 on the same weights (4 x 128 random tokens): |d log p| max {p.MaxLogprobError:E2}, " +
                $"mean {p.MeanLogprobError:E2}" +
                (p.MaxCreditError is double mc ? $"; |d credit| (beta 0.1, random pair) max {mc:E2}, mean {p.MeanCreditError:E2}" : ""));
        }
        if (off is null) return;
        Console.WriteLine();
        foreach (var (on, before) in r.Shapes.Zip(off.Shapes))
            Console.WriteLine($"{on.Batch} x {on.Length}: {on.ModelTokensPerSecond / before.ModelTokensPerSecond:F2}x the tokens/s with --speed-fixes " +
                $"{r.FixesSetting} against {off.FixesSetting}");
        Console.WriteLine($"matmul peak: {r.PeakGflops / off.PeakGflops:F2}x");
    }

    /// <summary>
    /// The best rate LibTorch reaches on large square matmuls (1024, 2048, 4096; best of 5 each): the
    /// ceiling a forward pass can approach on this machine, measured in the same run as the forward pass.
    /// Bounded in time whatever the CPU: where a dtype has no native kernel (bfloat16 without avx512_bf16 or
    /// AMX) one 4096 matmul alone takes minutes, so a size whose single matmul takes over a second is the last.
    /// </summary>
    static double MeasureMatmulPeak(ScalarType dtype)
    {
        using var inference = inference_mode();
        var budget = Stopwatch.StartNew();
        double best = 0;
        foreach (int n in new[] { 256, 1024, 2048, 4096 })
        {
            using var scope = NewDisposeScope();
            var a = randn([n, n]).to(dtype);
            var b = randn([n, n]).to(dtype);
            var first = Stopwatch.StartNew();
            a.matmul(b).Dispose();
            bool slow = first.Elapsed.TotalSeconds > 1;
            best = Math.Max(best, 2.0 * n * n * n / first.Elapsed.TotalSeconds);
            for (int i = 0; i < 5 && !slow && budget.Elapsed.TotalSeconds < PeakBudgetSeconds; i++)
            {
                var sw = Stopwatch.StartNew();
                a.matmul(b).Dispose();
                best = Math.Max(best, 2.0 * n * n * n / sw.Elapsed.TotalSeconds);
            }
            if (slow || budget.Elapsed.TotalSeconds >= PeakBudgetSeconds) break;
        }
        return best;
    }

    /// <summary>The matmul peak's time budget: a few seconds where the dtype is native, and the benchmark never waits on a slow one.</summary>
    const double PeakBudgetSeconds = 10;

    static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

sealed record ShapeResult(int Batch, int Length, double MedianMs, double ModelTokensPerSecond, double PairTokensPerSecond,
    double Gflops, double FractionOfPeak, long PageFaultsPerPass, long ResidentBytesAfterWarmup, long ResidentBytesEnd,
    long NativeBytesAfterWarmup, long NativeBytesEnd);

sealed record ForwardBench(string Model, long Parameters, long MatmulParameters, string Dtype, int Threads, string Cpu, bool NativeBfloat16,
    string FixesSetting, string SpeedFixes,
    string[] SpeedFixLines, double PeakGflops, double? Float32PeakGflops, ShapeResult[] Shapes, PrecisionError? Precision);

sealed record PrecisionError(double MaxLogprobError, double MeanLogprobError, double? MaxCreditError, double? MeanCreditError);
