using System.Runtime.CompilerServices;
using QService.Runtime.Torch;

namespace QService.TestSupport;

static class TestSetup
{
    /// <summary>
    /// LibTorch is loaded through TorchEnvironment before any test runs, as the service does: the CPU speed
    /// fixes must precede the first matmul, so every parity test runs with them on.
    /// </summary>
#pragma warning disable CA2255 // a test assembly is the place for this
    [ModuleInitializer]
    internal static void LoadLibTorchWithSpeedFixes() => TorchEnvironment.EnsureLoaded();
#pragma warning restore CA2255
}
