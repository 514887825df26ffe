using QService.Runtime.Torch;

namespace QService.Runtime.Tests.Torch;

public class CpuSpeedFixesTests
{
    static CpuFeatures Cpu(string vendor, bool avx2, bool avx512, bool x64Linux = true) => new(vendor, x64Linux, avx2, avx512, false, false);

    [Theory]
    [InlineData(true, true, "AuthenticAMD", true, true, true)]
    [InlineData(true, true, "AuthenticAMD", true, false, true)]    // AVX2 only: Intel's AVX2 kernels still beat MKL's path for others
    [InlineData(true, true, "GenuineIntel", true, true, false)]    // Intel already gets MKL's best kernels
    [InlineData(true, true, "AuthenticAMD", false, false, false)]  // no AVX2: nothing faster to unlock
    [InlineData(false, true, "AuthenticAMD", true, true, false)]   // turned off by the setting
    [InlineData(true, false, "AuthenticAMD", true, true, false)]   // not x86-64 Linux
    [InlineData(true, true, "HygonGenuine", true, false, true)]
    public void MklDecision(bool enabled, bool isX64Linux, string vendor, bool avx2, bool avx512, bool expected)
    {
        var decision = MklVendorPatch.Decide(enabled, Cpu(vendor, avx2, avx512, isX64Linux));
        Assert.Equal(expected, decision.Apply);
        Assert.False(string.IsNullOrWhiteSpace(decision.Reason));
    }

    [Theory]
    [InlineData("off")]
    [InlineData("0")]
    [InlineData(" FALSE ")]
    public void TheEnvironmentVariable_TurnsTheOverrideOff_WhateverTheSetting(string value)
    {
        var decision = MklVendorPatch.Decide(true, Cpu("AuthenticAMD", true, true), value);
        Assert.False(decision.Apply);
        Assert.Contains(MklVendorPatch.OffVariable, decision.Reason);
        Assert.True(MklVendorPatch.Decide(true, Cpu("AuthenticAMD", true, true), "on").Apply);
    }

    [Fact]
    public void OnThisMachine_TheOverrideIsActiveExactlyWhenTheDecisionSaysSo()
    {
        // Every test assembly loads LibTorch through TorchEnvironment first (TestSetup), so this is the state the
        // parity tests ran in: `QSERVICE_MKL_VENDOR_OVERRIDE=off bash tests/run.sh` runs them all without it.
        var report = TorchEnvironment.Initialize();
        var decision = MklVendorPatch.DecideHere(enabled: true);
        Assert.Equal(decision.Apply, report.MklActive);
        Assert.Equal(decision.Apply, MklVendorPatch.IsActive());
        Assert.Equal($"mkl-vendor-override={(decision.Apply ? "on" : "off")} keep-freed-memory=on", report.Summary);
        Assert.Contains(CpuFeatures.Here.BFloat16Sentence, report.Lines);
    }

    [Fact]
    public void CpuFeaturesFromCpuid_AgreeWithTheKernelsFlags()
    {
        // Two independent readings of the same CPU: our CPUID decoding against /proc/cpuinfo's flags.
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal))
            .Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var cpu = CpuFeatures.Here;
        Assert.Equal(File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("vendor_id", StringComparison.Ordinal)).Split(':', 2)[1].Trim(), cpu.Vendor);
        Assert.Equal(flags.Contains("avx2"), cpu.Avx2);
        Assert.Equal(flags.Contains("avx512f"), cpu.Avx512F);
        Assert.Equal(flags.Contains("avx512_bf16"), cpu.Avx512Bf16);
        Assert.Equal(flags.Contains("amx_bf16"), cpu.AmxBf16);
        Assert.Equal(flags.Contains("avx512_bf16") || flags.Contains("amx_bf16"), cpu.NativeBFloat16);
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
