using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace QService.Runtime.Torch;

/// <summary>Whether to make MKL take its AVX-512 kernels, and why.</summary>
public sealed record MklDecision(bool Apply, string Reason);

/// <summary>
/// LibTorch links Intel MKL statically, and MKL picks its float32 GEMM kernels with a vendor check: on a CPU
/// that is not "GenuineIntel" it takes the AVX2 path even when AVX-512 is there (about half the matmul rate on
/// AMD Zen 4/5). The check is the exported function <c>mkl_serv_intel_cpu_true</c> in libtorch_cpu.so; we
/// overwrite its body in memory with "return 1" (<c>mov eax, 1; ret</c>). MKL still picks the instruction set
/// from the CPU's own feature bits, so only the vendor is overridden. MKL settles its dispatch at the first
/// GEMM, so this must run before any matmul in the process (TorchEnvironment does it right after loading).
/// </summary>
public static class MklVendorPatch
{
    public const string Library = "libtorch_cpu.so";
    public const string Symbol = "mkl_serv_intel_cpu_true";
    static readonly byte[] ReturnOne = [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3];

    /// <summary>The decision as a pure function of the CPU and the setting.</summary>
    public static MklDecision Decide(bool enabled, bool isX64Linux, string vendor, bool hasAvx512F)
    {
        if (!enabled) return new(false, "MKL AVX-512 override off by setting");
        if (!isX64Linux) return new(false, "MKL AVX-512 override not needed: not x86-64 Linux");
        if (vendor == "GenuineIntel") return new(false, "MKL AVX-512 override not needed: Intel CPUs get MKL's AVX-512 kernels already");
        if (!hasAvx512F) return new(false, $"MKL AVX-512 override not applied: the CPU ({vendor}) has no AVX-512F, MKL's AVX2 path is its best");
        return new(true, $"MKL AVX-512 override on: the CPU ({vendor}) has AVX-512F but MKL's vendor check would keep it on AVX2 kernels");
    }

    /// <summary>The decision for this machine.</summary>
    public static MklDecision DecideHere(bool enabled) =>
        Decide(enabled, RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && RuntimeInformation.ProcessArchitecture == Architecture.X64,
            CpuVendor(), X86Base.IsSupported && Avx512F.IsSupported);

    /// <summary>The CPUID vendor string ("GenuineIntel", "AuthenticAMD", ...), or "" off x86.</summary>
    public static string CpuVendor()
    {
        if (!X86Base.IsSupported) return "";
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        var bytes = new byte[12];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), ebx);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), edx);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), ecx);
        return Encoding.ASCII.GetString(bytes);
    }

    /// <summary>True when the loaded libtorch_cpu.so answers "Intel" (patched here, or by anyone).</summary>
    public static bool IsActive() => TryFind(out var fn, out _) && ReadBytes(fn).AsSpan().SequenceEqual(ReturnOne);

    /// <summary>Overwrites the vendor check of the loaded libtorch_cpu.so. Returns null on success, else why not.</summary>
    public static string? Apply()
    {
        if (!TryFind(out var fn, out string? why)) return why;
        if (ReadBytes(fn).AsSpan().SequenceEqual(ReturnOne)) return null;
        long page = Environment.SystemPageSize;
        nint start = (nint)((long)fn & ~(page - 1));
        nuint length = (nuint)((long)fn + ReturnOne.Length - (long)start);
        if (Native.mprotect(start, length, Native.ProtRead | Native.ProtWrite | Native.ProtExec) != 0)
            return $"mprotect refused to make {Symbol} writable (errno {Marshal.GetLastPInvokeError()})";
        Marshal.Copy(ReturnOne, 0, fn, ReturnOne.Length);
        Native.mprotect(start, length, Native.ProtRead | Native.ProtExec);
        return null;
    }

    static bool TryFind(out nint fn, out string? why)
    {
        fn = 0;
        why = null;
        if (!NativeLibrary.TryLoad(Library, out var lib)) { why = $"{Library} is not loaded"; return false; }
        if (!NativeLibrary.TryGetExport(lib, Symbol, out fn)) { why = $"{Library} exports no {Symbol} (not an MKL build?)"; return false; }
        return true;
    }

    static byte[] ReadBytes(nint fn)
    {
        var bytes = new byte[ReturnOne.Length];
        Marshal.Copy(fn, bytes, 0, bytes.Length);
        return bytes;
    }

    static class Native
    {
        public const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
        [DllImport("libc", SetLastError = true)]
        public static extern int mprotect(nint addr, nuint len, int prot);
    }
}
