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

var app = builder.Build();
app.MapQServiceEndpoints(server);
app.Run();
