namespace QService.Runtime.Torch;

/// <summary>The process-wide CPU speed fixes (both on by default). See <see cref="MklVendorPatch"/> and <see cref="MallocTuning"/>.</summary>
/// <param name="MklVendorOverride">let MKL take the kernels it keeps for Intel CPUs on other x86-64 CPUs with AVX2 or AVX-512</param>
/// <param name="KeepFreedMemory">make malloc keep and reuse freed memory instead of faulting it in afresh every pass</param>
public sealed record CpuSpeedOptions(bool MklVendorOverride = true, bool KeepFreedMemory = true)
{
    public static CpuSpeedOptions Off => new(false, false);
}

/// <summary>What was applied at start-up, and why: for the start-up log and the benchmarks.</summary>
public sealed record CpuSpeedReport(CpuSpeedOptions Options, MklDecision Mkl, bool MklActive, string? MklFailure, bool MallocTuned, string MallocReason)
{
    /// <summary>Short form, e.g. "mkl-vendor-override=on keep-freed-memory=on".</summary>
    public string Summary => $"mkl-vendor-override={(MklActive ? "on" : "off")} keep-freed-memory={(MallocTuned ? "on" : "off")}";

    /// <summary>One sentence per fix, with its reason.</summary>
    public IEnumerable<string> Lines
    {
        get
        {
            yield return MklFailure is null ? Mkl.Reason : $"{Mkl.Reason}, but it could not be applied: {MklFailure}";
            yield return MallocReason;
            yield return CpuFeatures.Here.BFloat16Sentence;
        }
    }
}

internal static class CpuSpeedFixes
{
    /// <summary>Malloc first (before LibTorch allocates much), the MKL patch after LibTorch is loaded and before any matmul.</summary>
    public static CpuSpeedReport Apply(CpuSpeedOptions options, Action loadLibTorch)
    {
        string? mallocFailure = options.KeepFreedMemory ? MallocTuning.Apply() : "off by setting";
        string mallocReason = mallocFailure is null
            ? "malloc keeps freed memory (no mmap'd chunks, no heap trimming): forward passes reuse memory instead of page-faulting it in afresh"
            : $"malloc settings unchanged: {mallocFailure}";
        loadLibTorch();
        var decision = MklVendorPatch.DecideHere(options.MklVendorOverride);
        string? mklFailure = decision.Apply ? MklVendorPatch.Apply() : null;
        bool mklActive = decision.Apply && mklFailure is null;
        return new CpuSpeedReport(options, decision, mklActive, mklFailure, mallocFailure is null, mallocReason);
    }
}
