using Microsoft.Extensions.Diagnostics.HealthChecks;
using QService.Engine;

namespace QService.Host.Health;

/// <summary>Healthy only once both models are loaded and have run a warm-up forward pass.</summary>
public sealed class ModelsReadyCheck(ScoringEngine engine) : IHealthCheck
{
    public const string Tag = "ready";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(engine.Ready.Status switch
        {
            TaskStatus.RanToCompletion => HealthCheckResult.Healthy("models loaded and warmed up"),
            TaskStatus.Faulted => HealthCheckResult.Unhealthy($"models failed to load: {engine.Ready.Exception!.InnerException!.Message}"),
            _ => HealthCheckResult.Unhealthy("models are loading"),
        });
}
