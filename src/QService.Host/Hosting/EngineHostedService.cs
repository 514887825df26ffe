using QService.Engine;

namespace QService.Host.Hosting;

/// <summary>
/// Starts loading the models when the host starts, without blocking it: /healthz answers at once and
/// /readyz turns ready when both models are loaded and warmed up. If loading fails the process exits
/// with code 1 after logging why: a scorer without models is of no use to anyone.
/// </summary>
public sealed class EngineHostedService(ScoringEngine engine, IHostApplicationLifetime lifetime, ILogger<EngineHostedService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        engine.Start();
        engine.Ready.ContinueWith(t =>
        {
            if (t.IsFaulted)
            {
                logger.LogCritical("Stopping: the models could not be loaded ({Reason})", t.Exception!.InnerException!.Message);
                Environment.ExitCode = 1;
                lifetime.StopApplication();
            }
            else logger.LogInformation("Ready: models loaded and warmed up");
        }, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
