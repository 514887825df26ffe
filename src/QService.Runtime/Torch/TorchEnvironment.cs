using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Torch;

/// <summary>
/// Process-wide TorchSharp set-up: checks that the native library loads (with the real cause when it
/// does not), picks the device and parses dtype names.
/// </summary>
public static class TorchEnvironment
{
    static readonly object Gate = new();
    static CpuSpeedReport? _speed;

    /// <summary>
    /// Loads LibTorch once, applying the CPU speed fixes first (they must precede the first matmul in the
    /// process). The first call decides; later calls return the same report. Throws
    /// <see cref="InvalidOperationException"/> that explains why when LibTorch cannot load.
    /// </summary>
    public static CpuSpeedReport Initialize(CpuSpeedOptions? options = null)
    {
        lock (Gate) return _speed ??= CpuSpeedFixes.Apply(options ?? new CpuSpeedOptions(), LoadNative);
    }

    /// <summary>Loads LibTorch (with the default speed fixes, unless <see cref="Initialize"/> ran first).</summary>
    public static void EnsureLoaded() => Initialize();

    /// <summary>
    /// Sets LibTorch's intra-op threads: <paramref name="threads"/> when positive, else one per physical core
    /// (LibTorch's own default counts SMT siblings, whose threads only contend for the same matmul units).
    /// Returns the number in force.
    /// </summary>
    public static int ApplyThreads(int threads)
    {
        EnsureLoaded();
        set_num_threads(threads > 0 ? threads : CpuTopology.PhysicalCores());
        return get_num_threads();
    }

    static void LoadNative()
    {
        try
        {
            using var probe = zeros(1);
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException)
        {
            throw new InvalidOperationException(DiagnoseLoadFailure(e), e);
        }
    }

    /// <summary>
    /// TorchSharp's own message says a libtorch package reference is missing; on Debian 12 the real cause is
    /// usually that libLibTorchSharp.so needs GLIBCXX_3.4.32. We say so, and what the build normally does about it.
    /// </summary>
    static string DiagnoseLoadFailure(Exception e)
    {
        string dir = AppContext.BaseDirectory;
        string lib = Path.Combine(dir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(lib)) lib = Path.Combine(dir, "libLibTorchSharp.so");
        string detail = "";
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && File.Exists(lib))
        {
            // dlopen gives the loader's own reason (missing symbol version, missing dependency).
            if (!NativeLibrary.TryLoad(lib, out var handle))
            {
                try { NativeLibrary.Load(lib); }
                catch (Exception inner) { detail = inner.Message; }
            }
            else NativeLibrary.Free(handle);
        }
        string hint = detail.Contains("GLIBCXX", StringComparison.Ordinal)
            ? " The system libstdc++ is older than the one TorchSharp was built against. The QService build patches the copy of " +
              "libLibTorchSharp.so in its output folder on such machines (build/TorchSharp.Debian12.targets); run through " +
              "`dotnet build`/`dotnet run`/`dotnet publish` of this repository rather than copying binaries from another machine."
            : "";
        return $"TorchSharp's native library could not be loaded from {dir}: {(detail.Length > 0 ? detail : e.Message)}.{hint}";
    }

    /// <summary>
    /// "auto" → cuda when LibTorch sees a GPU, else cpu; "cuda"/"cuda:N" → that GPU, or an error if none;
    /// "cpu" → cpu. Returns the device and a sentence for the startup log.
    /// </summary>
    public static (Device Device, string Reason) SelectDevice(string requested)
    {
        EnsureLoaded();
        string r = (requested ?? "auto").Trim().ToLowerInvariant();
        bool cudaAvailable = cuda.is_available();
        if (r is "auto" or "")
            return cudaAvailable
                ? (CUDA, $"device auto: CUDA is available ({cuda.device_count()} GPU(s)), using cuda")
                : (CPU, "device auto: CUDA is not available (CPU build of LibTorch or no GPU), using cpu");
        if (r == "cpu") return (CPU, "device cpu: as configured");
        if (r.StartsWith("cuda", StringComparison.Ordinal))
        {
            if (!cudaAvailable)
                throw new InvalidOperationException($"Device '{requested}' was asked for, but CUDA is not available (this build uses the " +
                    $"{(IsCudaBuild ? "CUDA" : "CPU")} LibTorch package; build with -p:TorchBackend=cuda on a machine with a GPU), " +
                    "or use device 'cpu'/'auto'.");
            return (new Device(r), $"device {r}: as configured");
        }
        throw new ArgumentException($"Unknown device '{requested}': use auto, cpu, cuda or cuda:N.");
    }

    static bool IsCudaBuild => AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name?.Contains("cuda", StringComparison.OrdinalIgnoreCase) == true);

    /// <summary>Parses float32/float16/bfloat16 (and the HF spellings fp32, fp16, bf16, half).</summary>
    public static ScalarType ParseDtype(string name) =>
        TryParseDtype(name) ?? throw new ArgumentException($"Unknown dtype '{name}': use float32, bfloat16 or float16.");

    /// <summary>The dtype a name stands for, or null for an unknown name (configuration checks use it without loading LibTorch).</summary>
    public static ScalarType? TryParseDtype(string name) => name.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" or "float" or "f32" => ScalarType.Float32,
        "float16" or "fp16" or "half" or "f16" => ScalarType.Float16,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        _ => null,
    };

    public static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        _ => t.ToString().ToLowerInvariant(),
    };
}
