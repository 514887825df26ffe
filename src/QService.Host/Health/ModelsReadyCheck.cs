using Microsoft.Extensions.Diagnostics.HealthChecks;
using QService.Engine;

namespace QService.Host.Health;

/// <summary>Healthy only once both models are loaded and warmed up, while the service is not draining and its passes are not failing in a row.</summary>
public sealed class ModelsReadyCheck(ScoringEngine engine) : IHealthCheck
{
    public const string Tag = "ready";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var (ready, reason) = engine.Readiness;
        return Task.FromResult(ready ? HealthCheckResult.Healthy(reason) : HealthCheckResult.Unhealthy(reason));
    }
}
