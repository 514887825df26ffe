using System.Runtime.InteropServices;

namespace QService.Runtime.Torch;

/// <summary>
/// LibTorch's CPU allocator has no cache: every forward pass allocates its activations and logits through
/// malloc. glibc serves large blocks with mmap and returns them to the kernel on free (and trims the heap
/// top), so the next pass faults every page in afresh, zeroed by the kernel. On this kind of machine that
/// cost about half the forward pass. These settings make malloc keep freed memory and reuse it: resident
/// memory stays at the peak of one pass instead of being returned and faulted back every time.
/// </summary>
public static class MallocTuning
{
    // mallopt parameters (malloc.h).
    const int M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2, M_MMAP_MAX = -4;

    /// <summary>
    /// No mmap'd chunks (they are unmapped on every free), never trim the heap top, and grow the heap in
    /// 64 MiB steps. Returns null on success, else why not (not glibc, or mallopt refused).
    /// </summary>
    public static string? Apply()
    {
        if (!IsGlibc()) return "not glibc: malloc settings left alone";
        if (Native.mallopt(M_MMAP_MAX, 0) == 0) return "mallopt(M_MMAP_MAX) refused";
        if (Native.mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 0) return "mallopt(M_TRIM_THRESHOLD) refused";
        if (Native.mallopt(M_TOP_PAD, 64 << 20) == 0) return "mallopt(M_TOP_PAD) refused";
        return null;
    }

    static bool IsGlibc() =>
        RuntimeInformation.IsOSPlatform(OSPlatform.Linux)
        && NativeLibrary.TryLoad("libc.so.6", out var libc)
        && NativeLibrary.TryGetExport(libc, "gnu_get_libc_version", out _);

    static class Native
    {
        [DllImport("libc")]
        public static extern int mallopt(int param, int value);
    }
}
