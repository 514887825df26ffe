using QService.Host.Hosting;
using QService.Host.Telemetry;

// QService host: gRPC scoring (port 50051) and a management port (8080: /healthz, /readyz, /metrics).
// Configuration: appsettings.json < QSERVICE__Section__Key environment variables < command-line flags.
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddEnvironmentVariables(prefix: "QSERVICE__").AddCommandLine(args, CommandLine.SwitchMappings);
var server = builder.Configuration.GetSection("Server").Get<ServerOptions>() ?? new ServerOptions();

builder.AddQServiceLogging(server.LogFormat);
builder.Services.AddQServiceEngine(builder.Configuration);
builder.Services.AddQServiceGrpc();
builder.Services.AddQServiceTelemetry(builder.Configuration);
builder.WebHost.ConfigureQServiceEndpoints(server);
builder.Services.Configure<ServerOptions>(builder.Configuration.GetSection("Server"));
// The drain (EngineHostedService.StoppingAsync) runs inside the host's shutdown time: leave room for the server to stop after it.
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(server.DrainSeconds + 10));

var app = builder.Build();
app.MapQServiceEndpoints(server);
try
{
    app.Run();
}
catch (Microsoft.Extensions.Options.OptionsValidationException e)
{
    // A bad setting: say which and why, and exit 1 like a failed model load does.
    app.Logger.LogCritical("Stopping: invalid configuration: {Problems}", string.Join("; ", e.Failures));
    Console.Error.WriteLine($"qservice: invalid configuration: {string.Join("; ", e.Failures)}");
    return 1;
}
return Environment.ExitCode;
