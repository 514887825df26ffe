using Microsoft.Extensions.Options;
using QService.Engine;

namespace QService.Host.Hosting;

/// <summary>
/// Starts loading the models when the host starts, without blocking it: /healthz answers at once and
/// /readyz turns ready when both models are loaded and warmed up. If loading fails the process exits
/// with code 1 after logging why: a scorer without models is of no use to anyone. On shutdown (SIGTERM) it
/// drains before the server stops: readiness and gRPC health go down, new calls get UNAVAILABLE, and
/// accepted work finishes, for at most Server:DrainSeconds.
/// </summary>
public sealed class EngineHostedService(ScoringEngine engine, IHostApplicationLifetime lifetime, IOptions<ServerOptions> server,
    ILogger<EngineHostedService> logger) : IHostedLifecycleService
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

    /// <summary>Runs before any service stops, so the server still answers (503, UNAVAILABLE) while accepted work finishes.</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        engine.BeginDrain();
        logger.LogInformation("Draining: finishing accepted work for at most {Seconds} s", server.Value.DrainSeconds);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(TimeSpan.FromSeconds(server.Value.DrainSeconds));
        try
        {
            await engine.WaitIdleAsync(bounded.Token);
            logger.LogInformation("Drained: no work left");
        }
        catch (OperationCanceledException)
        {
            logger.LogWarning("Drain time is up with work still running; stopping anyway");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
