using System.Net;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using QService.Engine;
using QService.Host.Grpc;
using QService.Host.Health;

namespace QService.Host.Hosting;

public static class HostingExtensions
{
    /// <summary>Options from configuration (appsettings.json, QSERVICE__* variables, flags) and the engine as a singleton.</summary>
    public static IServiceCollection AddQServiceEngine(this IServiceCollection services, IConfiguration configuration)
    {
        // Checked before the host is built (StartupSettings.Check), with the Server section, in one place.
        services.AddOptions<ModelOptions>().Bind(configuration.GetSection("Models"));
        services.AddOptions<BatchingOptions>().Bind(configuration.GetSection("Batching"));
        services.AddOptions<RequestLimits>().Bind(configuration.GetSection("Limits"));
        services.AddOptions<PrefixCacheOptions>().Bind(configuration.GetSection("PrefixCache"));
        services.AddSingleton(sp => new ScoringEngine(
            sp.GetRequiredService<IOptions<ModelOptions>>().Value,
            sp.GetRequiredService<IOptions<BatchingOptions>>().Value,
            sp.GetRequiredService<IOptions<RequestLimits>>().Value,
            Path.Combine(AppContext.BaseDirectory, "models", "demo"),
            sp.GetRequiredService<ILogger<ScoringEngine>>(),
            sp.GetRequiredService<IOptions<PrefixCacheOptions>>().Value));
        services.AddHostedService<EngineHostedService>();
        return services;
    }

    /// <summary>
    /// Largest gRPC message accepted, from the request limits: room for MaxTokensPerRequest tokens as ids or as
    /// text (64 bytes a token) plus 1 MiB. Larger messages are refused before they are read (RESOURCE_EXHAUSTED).
    /// </summary>
    public static int MaxReceiveBytes(RequestLimits limits) => (int)Math.Min(int.MaxValue, 64L * limits.MaxTokensPerRequest + (1 << 20));

    /// <summary>gRPC with health (SERVING only when the models are ready) and reflection.</summary>
    public static IServiceCollection AddQServiceGrpc(this IServiceCollection services, IConfiguration configuration, ServerOptions server)
    {
        // From the raw settings: the validated ones are checked at start-up, where a bad one stops the process with its reason.
        var limits = configuration.GetSection("Limits").Get<RequestLimits>() ?? new RequestLimits();
        services.AddSingleton(Security.ApiKeys.Load(server.ApiKeysFile, Environment.GetEnvironmentVariable("QSERVICE_API_KEYS")));
        services.AddGrpc(o =>
        {
            o.EnableDetailedErrors = false;
            o.MaxReceiveMessageSize = MaxReceiveBytes(limits);
            o.Interceptors.Add<Security.ApiKeyInterceptor>();
        }).AddJsonTranscoding();
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(o =>
            {
                o.Services.Map("", r => r.Tags.Contains(ModelsReadyCheck.Tag));
                o.Services.Map("qservice.v1.QScorer", r => r.Tags.Contains(ModelsReadyCheck.Tag));
            })
            .AddCheck<ModelsReadyCheck>("models", tags: [ModelsReadyCheck.Tag]);
        return services;
    }

    /// <summary>Two endpoints: gRPC over HTTP/2 (h2c) and the HTTP/1.1 management port.</summary>
    public static void ConfigureQServiceEndpoints(this ConfigureWebHostBuilder webHost, ServerOptions server)
    {
        var (address, management) = (server.ApiAddress, server.ManagementAddress);
        webHost.ConfigureKestrel(k =>
        {
            // gRPC bounds each message itself (MaxReceiveBytes) and answers RESOURCE_EXHAUSTED; Kestrel's body
            // limit would fail a long stream with UNKNOWN instead.
            k.Limits.MaxRequestBodySize = null;
            k.Limits.MaxConcurrentConnections = server.MaxConnections;
            k.Limits.Http2.MaxStreamsPerConnection = server.MaxStreamsPerConnection;
            k.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(server.KeepAlivePingSeconds);
            k.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(server.KeepAlivePingSeconds);
            // The certificate is read once; the API ports (gRPC and JSON) share it.
            var tls = Security.Tls.Enabled(server) ? Security.Tls.Options(server) : null;
            void Api(int port, HttpProtocols protocols) => k.Listen(address, port, o =>
            {
                o.Protocols = protocols;
                if (tls != null) o.UseHttps(tls);
            });
            Api(server.GrpcPort, HttpProtocols.Http2);
            k.Listen(management, server.HttpPort, o => o.Protocols = HttpProtocols.Http1);
            if (server.HttpApiPort > 0) Api(server.HttpApiPort, HttpProtocols.Http1);
        });
    }

    const string HandlerThrew = "Exception was thrown by handler.";
    const string TooLarge = "Received message exceeds the maximum configured message size.";

    /// <summary>
    /// Two answers of Grpc.AspNetCore itself, said so that the caller knows what to fix: a request body it
    /// cannot parse as protobuf comes back UNKNOWN, "Exception was thrown by handler." (our handlers never let
    /// an exception through), and becomes INVALID_ARGUMENT; a message over the receive limit keeps
    /// RESOURCE_EXHAUSTED and gets the limit in its message.
    /// </summary>
    static void RestateFrameworkErrors(HttpContext ctx, int maxReceiveBytes)
    {
        var trailers = ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseTrailersFeature>()?.Trailers;
        foreach (var headers in new[] { ctx.Response.HasStarted ? null : ctx.Response.Headers, trailers })
        {
            if (headers is null || headers.IsReadOnly) continue;
            if (headers["grpc-status"] == "2" && headers["grpc-message"] == HandlerThrew)
            {
                headers["grpc-status"] = "3";
                headers["grpc-message"] = "the request is not a valid protobuf message of this method's request type";
            }
            else if (headers["grpc-status"] == "8" && headers["grpc-message"] == TooLarge)
                headers["grpc-message"] = $"the request message is larger than the limit of {maxReceiveBytes:N0} bytes (64 bytes per token of " +
                    "Limits:MaxTokensPerRequest, plus 1 MiB); split it";
        }
    }

    public static void MapQServiceEndpoints(this WebApplication app, ServerOptions server)
    {
        int maxReceiveBytes = app.Services.GetRequiredService<IOptions<global::Grpc.AspNetCore.Server.GrpcServiceOptions>>().Value.MaxReceiveMessageSize!.Value;
        // The management port serves /healthz, /readyz and /metrics and nothing else; the HTTP API port only the
        // JSON routes (/v1/..., the reward routes, vLLM's tokenizer routes); the gRPC port neither.
        app.Use(async (ctx, next) =>
        {
            int port = ctx.Connection.LocalPort;
            bool managementPath = ctx.Request.Path == "/healthz" || ctx.Request.Path == "/readyz" || ctx.Request.Path == "/metrics";
            bool apiPath = ctx.Request.Path.StartsWithSegments("/v1") || Rewards.RewardRoutes.Owns(ctx.Request.Path)
                || OpenAi.OpenAiRoutes.IsRootPath(ctx.Request.Path);
            bool allowed = port == server.HttpPort ? managementPath : port == server.HttpApiPort ? apiPath : !managementPath && !apiPath;
            if (!allowed)
            {
                ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            await next();
        });
        app.Use(async (ctx, next) =>
        {
            await next();
            if (ctx.Connection.LocalPort == server.GrpcPort) RestateFrameworkErrors(ctx, maxReceiveBytes);
        });
        app.UseOpenTelemetryPrometheusScrapingEndpoint(ctx => ctx.Request.Path == "/metrics" && ctx.Connection.LocalPort == server.HttpPort);
        // Alive unless a pass has hung past Batching:MaxPassSeconds (the watchdog): then 503 with the reason.
        app.MapGet("/healthz", (ScoringEngine engine) =>
        {
            var (alive, reason) = engine.Liveness;
            return alive ? Results.Text("ok\n") : Results.Text($"not alive: {reason}\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        app.MapHealthChecks("/readyz", new HealthCheckOptions
        {
            Predicate = r => r.Tags.Contains(ModelsReadyCheck.Tag),
            ResponseWriter = async (ctx, report) =>
            {
                ctx.Response.ContentType = "text/plain";
                var entry = report.Entries.Values.FirstOrDefault();
                await ctx.Response.WriteAsync(
                    $"{(report.Status == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy ? "ready" : "not ready")}: {entry.Description}\n");
            },
        });
        app.MapGrpcService<QScorerService>();
        OpenAi.OpenAiRoutes.MapOpenAiRoutes(app);
        Rewards.RewardRoutes.MapQServiceRewards(app);
        app.MapGrpcHealthChecksService();
        if (server.EnableReflection) app.MapGrpcReflectionService();
    }
}
