using QService.Runtime.Torch;

namespace QService.Runtime.Tests.Torch;

public class CpuSpeedFixesTests
{
    [Theory]
    [InlineData(true, true, "AuthenticAMD", true, true)]
    [InlineData(true, true, "GenuineIntel", true, false)]   // Intel already gets MKL's AVX-512 kernels
    [InlineData(true, true, "AuthenticAMD", false, false)]  // no AVX-512F: AVX2 is the best path
    [InlineData(false, true, "AuthenticAMD", true, false)]  // turned off by the setting
    [InlineData(true, false, "AuthenticAMD", true, false)]  // not x86-64 Linux
    [InlineData(true, true, "HygonGenuine", true, true)]
    public void MklDecision(bool enabled, bool isX64Linux, string vendor, bool avx512, bool expected)
    {
        var decision = MklVendorPatch.Decide(enabled, isX64Linux, vendor, avx512);
        Assert.Equal(expected, decision.Apply);
        Assert.False(string.IsNullOrWhiteSpace(decision.Reason));
    }

    [Fact]
    public void OnThisMachine_TheOverrideIsActiveExactlyWhenTheDecisionSaysSo()
    {
        // Every test assembly loads LibTorch through TorchEnvironment first (TestSetup), so this is the state the
        // parity tests ran in.
        var report = TorchEnvironment.Initialize();
        var decision = MklVendorPatch.DecideHere(enabled: true);
        Assert.Equal(decision.Apply, report.MklActive);
        Assert.Equal(decision.Apply, MklVendorPatch.IsActive());
        if (decision.Apply) Assert.Equal("mkl-avx512=on keep-freed-memory=on", report.Summary);
    }

    [Fact]
    public void OnThisMachine_TheDecisionIsOn_ForItsAmdCpuWithAvx512()
    {
        // The project's machines are AMD EPYC with AVX-512; elsewhere this states what the CPU is instead.
        string vendor = MklVendorPatch.CpuVendor();
        bool avx512 = System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        Assert.Equal(vendor != "GenuineIntel" && avx512, MklVendorPatch.DecideHere(true).Apply);
    }

    [Theory]
    [InlineData("0", 1)]
    [InlineData("0-1", 2)]
    [InlineData("0,64", 2)]
    [InlineData("0-3,8-11", 8)]
    public void CpuLists_AreCounted(string list, int count) => Assert.Equal(count, CpuTopology.CountCpus(list));

    [Fact]
    public void PhysicalCores_IsAtLeastOne_AndAtMostTheUsableCpus()
    {
        int cores = CpuTopology.PhysicalCores();
        Assert.InRange(cores, 1, Environment.ProcessorCount);
    }
}
