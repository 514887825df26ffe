using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using QService.Engine.Telemetry;
using Serilog;
using Serilog.Formatting.Compact;

namespace QService.Host.Telemetry;

public static class TelemetrySetup
{
    /// <summary>
    /// Metrics for Prometheus (engine + host meters) and traces: a span per RPC from ASP.NET Core with the
    /// engine's queue-wait and forward-pass spans under it, exported over OTLP only when the standard
    /// OTEL_EXPORTER_OTLP_ENDPOINT variable is set; OTEL_EXPORTER_OTLP_PROTOCOL picks grpc (the default) or
    /// http/protobuf, as every OpenTelemetry SDK reads it.
    /// </summary>
    public static IServiceCollection AddQServiceTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        bool otlp = !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        services.AddSingleton<HostMetrics>();
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("qservice"))
            .WithMetrics(m => m
                .AddMeter(EngineTelemetry.MeterName, HostMetrics.MeterName)
                // No response cache: a scrape always shows the counters as they are now.
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0))
            .WithTracing(t =>
            {
                t.AddSource(EngineTelemetry.ActivitySourceName)
                 .AddAspNetCoreInstrumentation(o => o.Filter = ctx => !IsManagementPath(ctx.Request.Path));
                if (otlp) t.AddOtlpExporter();
            });
        return services;
    }

    static bool IsManagementPath(PathString path) => path == "/metrics" || path == "/healthz" || path == "/readyz";

    /// <summary>Serilog to the console: JSON lines (with trace and span ids) unless a terminal asks for text.</summary>
    public static void AddQServiceLogging(this WebApplicationBuilder builder, string format)
    {
        bool text = format == "text" || (format == "auto" && !Console.IsOutputRedirected);
        builder.Services.AddSerilog((services, lc) =>
        {
            lc.ReadFrom.Configuration(builder.Configuration)
              .MinimumLevel.Information()
              .MinimumLevel.Override("Microsoft.AspNetCore", Serilog.Events.LogEventLevel.Warning)
              .MinimumLevel.Override("Grpc", Serilog.Events.LogEventLevel.Warning)
              // Its errors are requests that are not valid protobuf (answered INVALID_ARGUMENT, see MapQServiceEndpoints):
              // a caller's mistake, not worth a stack trace each. The service's own handlers log their errors themselves.
              .MinimumLevel.Override("Grpc.AspNetCore.Server.ServerCallHandler", Serilog.Events.LogEventLevel.Fatal)
              .Enrich.FromLogContext();
            if (text)
                lc.WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {TraceId}{NewLine}{Exception}");
            else
                lc.WriteTo.Console(new RenderedCompactJsonFormatter());
        });
    }
}
