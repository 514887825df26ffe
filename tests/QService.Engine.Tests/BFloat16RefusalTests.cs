using QService.Runtime.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Engine.Tests;

/// <summary>bfloat16 is refused on a CPU that only emulates it, and only there.</summary>
public class BFloat16RefusalTests
{
    static CpuFeatures Cpu(bool avx512Bf16, bool amxBf16) => new("AuthenticAMD", true, true, avx512Bf16 || amxBf16, avx512Bf16, amxBf16);

    [Fact]
    public void OnACpuWithoutNativeBFloat16_TheReasonAndWhatToUse()
    {
        string? problem = ModelPair.EmulatedBFloat16(ScalarType.BFloat16, DeviceType.CPU, Cpu(false, false));
        Assert.NotNull(problem);
        Assert.Contains("Models:Dtype is bfloat16, but this CPU (AuthenticAMD, AVX2) has no native bfloat16", problem);
        Assert.Contains("use --dtype float32", problem);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, DeviceType.CPU, true, false)]   // avx512_bf16
    [InlineData(ScalarType.BFloat16, DeviceType.CPU, false, true)]   // AMX
    [InlineData(ScalarType.BFloat16, DeviceType.CUDA, false, false)] // a GPU does it natively
    [InlineData(ScalarType.Float32, DeviceType.CPU, false, false)]
    public void ElsewhereNothingIsRefused(ScalarType dtype, DeviceType device, bool avx512Bf16, bool amx) =>
        Assert.Null(ModelPair.EmulatedBFloat16(dtype, device, Cpu(avx512Bf16, amx)));
}
