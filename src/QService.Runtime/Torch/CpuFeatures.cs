using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace QService.Runtime.Torch;

/// <summary>
/// What this CPU computes natively, as far as LibTorch's CPU kernels care: the vendor (MKL's dispatch looks at
/// it), AVX2, AVX-512F, and native bfloat16 (AVX512_BF16 or AMX-BF16, which oneDNN's bfloat16 matmuls need;
/// without them LibTorch falls back to kernels that run bfloat16 orders of magnitude slower than float32).
/// Read from CPUID; the OS must have enabled the AVX-512 state for its features to count.
/// </summary>
public sealed record CpuFeatures(string Vendor, bool IsX64Linux, bool Avx2, bool Avx512F, bool Avx512Bf16, bool AmxBf16)
{
    /// <summary>bfloat16 matmuls have a native kernel here.</summary>
    public bool NativeBFloat16 => Avx512Bf16 || AmxBf16;

    /// <summary>This machine's CPU.</summary>
    public static CpuFeatures Here { get; } = Read();

    /// <summary>One sentence for the start-up log and the benchmarks.</summary>
    public string BFloat16Sentence => NativeBFloat16
        ? $"bfloat16: native on this CPU ({string.Join(" and ", new[] { Avx512Bf16 ? "avx512_bf16" : null, AmxBf16 ? "amx_bf16" : null }.OfType<string>())})"
        : $"bfloat16: not native on this CPU ({Describe()}: no avx512_bf16 or amx_bf16), so LibTorch emulates it far slower than float32; use float32 on it";

    /// <summary>e.g. "AuthenticAMD, AVX2" or "GenuineIntel, AVX-512".</summary>
    public string Describe() => $"{(Vendor.Length > 0 ? Vendor : "not x86")}, {(Avx512F ? "AVX-512" : Avx2 ? "AVX2" : "no AVX2")}";

    static CpuFeatures Read()
    {
        bool x64Linux = RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && RuntimeInformation.ProcessArchitecture == Architecture.X64;
        if (!X86Base.IsSupported) return new("", x64Linux, false, false, false, false);
        bool avx512 = System.Runtime.Intrinsics.X86.Avx512F.IsSupported; // CPU and OS (the ZMM state enabled)
        var (_, _, _, edx7) = X86Base.CpuId(7, 0);
        var (eax71, _, _, _) = X86Base.CpuId(7, 1);
        bool amxBf16 = (edx7 & (1 << 22)) != 0 && avx512; // the AMX CPUs all have AVX-512, and the OS enables both or neither here
        bool avx512Bf16 = avx512 && (eax71 & (1 << 5)) != 0;
        return new(ReadVendor(), x64Linux, System.Runtime.Intrinsics.X86.Avx2.IsSupported, avx512, avx512Bf16, amxBf16);
    }

    /// <summary>The CPUID vendor string ("GenuineIntel", "AuthenticAMD", ...).</summary>
    static string ReadVendor()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        var bytes = new byte[12];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), ebx);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), edx);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), ecx);
        return Encoding.ASCII.GetString(bytes);
    }
}
