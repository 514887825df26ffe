using System.Runtime.InteropServices;

namespace QService.Runtime.Torch;

/// <summary>Whether to make MKL take its Intel code paths, and why.</summary>
public sealed record MklDecision(bool Apply, string Reason);

/// <summary>
/// LibTorch links Intel MKL statically, and MKL picks its float32 GEMM kernels with a vendor check: on a CPU
/// that is not "GenuineIntel" it takes a slower path whatever the CPU can do. With AVX-512 that is its AVX2
/// path (about half the matmul rate on AMD Zen 4/5); with AVX2 only it is still 10-17 % slower than the AVX2
/// kernels Intel CPUs get (measured on AVX2-only AMD EPYC). The check is the exported function
/// <c>mkl_serv_intel_cpu_true</c> in libtorch_cpu.so; we overwrite its body in memory with "return 1"
/// (<c>mov eax, 1; ret</c>). MKL still picks the instruction set from the CPU's own feature bits, so only the
/// vendor is overridden. MKL settles its dispatch at the first GEMM, so this must run before any matmul in the
/// process (TorchEnvironment does it right after loading).
/// </summary>
public static class MklVendorPatch
{
    public const string Library = "libtorch_cpu.so";
    public const string Symbol = "mkl_serv_intel_cpu_true";
    /// <summary>Set to "off" (or 0/false) to keep MKL's own vendor check in every process, whatever the settings say.</summary>
    public const string OffVariable = "QSERVICE_MKL_VENDOR_OVERRIDE";
    static readonly byte[] ReturnOne = [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3];

    /// <summary>The decision as a pure function of the setting, the CPU and the value of <see cref="OffVariable"/> (which wins).</summary>
    public static MklDecision Decide(bool enabled, CpuFeatures cpu, string? offVariable = null)
    {
        if (offVariable?.Trim().ToLowerInvariant() is "off" or "0" or "false") return new(false, $"MKL vendor override off by {OffVariable}");
        if (!enabled) return new(false, "MKL vendor override off by setting");
        if (!cpu.IsX64Linux) return new(false, "MKL vendor override not needed: not x86-64 Linux");
        if (cpu.Vendor == "GenuineIntel") return new(false, "MKL vendor override not needed: Intel CPUs get MKL's best kernels already");
        if (cpu.Avx512F) return new(true, $"MKL vendor override on: the CPU ({cpu.Vendor}) has AVX-512F, which MKL's vendor check " +
            "would leave to its AVX2 kernels");
        if (cpu.Avx2) return new(true, $"MKL vendor override on: the CPU ({cpu.Vendor}) has AVX2, whose kernels MKL's vendor check keeps for Intel CPUs");
        return new(false, $"MKL vendor override not applied: the CPU ({cpu.Vendor}) has no AVX2, so MKL has no faster kernels for it");
    }

    /// <summary>The decision for this machine and process.</summary>
    public static MklDecision DecideHere(bool enabled) => Decide(enabled, CpuFeatures.Here, Environment.GetEnvironmentVariable(OffVariable));

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
