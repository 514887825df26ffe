using QService.Host.Hosting;
using QService.Host.Telemetry;

// QService host: gRPC scoring (port 50051) and a management port (8080: /healthz, /readyz, /metrics).
// Configuration: appsettings.json < QSERVICE__Section__Key environment variables < command-line flags.
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddEnvironmentVariables(prefix: "QSERVICE__").AddCommandLine(args, CommandLine.SwitchMappings);
var server = builder.Configuration.GetSection("Server").Get<ServerOptions>() ?? new ServerOptions();

builder.AddQServiceLogging(server.LogFormat);
try
{
    builder.Services.AddQServiceEngine(builder.Configuration);
    builder.Services.AddQServiceGrpc(builder.Configuration, server);
    builder.Services.AddQServiceTelemetry(builder.Configuration);
    builder.WebHost.ConfigureQServiceEndpoints(server);
    builder.Services.Configure<ServerOptions>(builder.Configuration.GetSection("Server"));
    // The drain (EngineHostedService.StoppingAsync) runs inside the host's shutdown time: leave room for the server to stop after it.
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(server.DrainSeconds + 10));

    var app = builder.Build();
    app.MapQServiceEndpoints(server);
    app.Run();
}
catch (Exception e) when (e is Microsoft.Extensions.Options.OptionsValidationException or ConfigurationException)
{
    // A bad setting: say which and why, and exit 1 like a failed model load does.
    string problems = e is Microsoft.Extensions.Options.OptionsValidationException v ? string.Join("; ", v.Failures) : e.Message;
    Console.Error.WriteLine($"qservice: invalid configuration: {problems}");
    return 1;
}
return Environment.ExitCode;
