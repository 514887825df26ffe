using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QService.Engine.Backends;
using QService.Runtime.Torch;

namespace QService.Engine;

/// <summary>The production factory: loads the configured pair on the owner thread, reports how far for readiness, and logs what it loaded.</summary>
internal sealed class ModelPairLoader(ModelOptions options, string defaultPairFolder, ILogger logger)
{
    volatile string? _loading;

    /// <summary>What is loading and how far; null before and after.</summary>
    public string? Loading => _loading;

    public LoadedBackend Load()
    {
        var sw = Stopwatch.StartNew();
        var progress = new LoadProgress(logger);
        var pair = ModelPair.Load(options, defaultPairFolder, (role, done, total) => _loading = progress.Report(role, done, total));
        _loading = null;
        logger.LogInformation("Loaded reference {Reference} ({Architecture}, {Parameters:N0} parameters, {Dtype}) and {Count} policies in {Seconds:F1} s; " +
            "{DeviceReason}; default beta {Beta}",
            pair.Reference.Name, pair.Reference.Config.Architecture, pair.Reference.ParameterCount, TorchEnvironment.DtypeName(pair.Reference.Dtype),
            pair.Policies.Count, sw.Elapsed.TotalSeconds, pair.Reference.DeviceReason, pair.DefaultBeta);
        foreach (var (policy, index) in pair.Policies.Select((p, i) => (p, i)))
            logger.LogInformation("Policy {Policy}{Default}: {Model} ({Architecture}, {What})", policy.Name, index == 0 ? " (default)" : "",
                policy.Model.Name, policy.Model.Config.Architecture,
                PolicySources.AdapterSummary(policy.Model)?.Description ?? $"{policy.Model.ParameterCount:N0} parameters");
        var speed = TorchEnvironment.Initialize();
        logger.LogInformation("CPU speed fixes: {SpeedFixes}; {IntraOpThreads} intra-op threads. {Reasons}",
            speed.Summary, TorchSharp.torch.get_num_threads(), string.Join(". ", speed.Lines));
        return new LoadedBackend(new ModelPairBackend(pair), pair.Describe());
    }
}
