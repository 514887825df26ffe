using QService.Host.Hosting;
using QService.Host.Telemetry;

// QService host: gRPC scoring (port 50051) and a management port (8080: /healthz, /readyz, /metrics).
// Configuration: appsettings.json < QSERVICE__Section__Key environment variables < command-line flags.
var builder = WebApplication.CreateBuilder(args);
ServerOptions server;
try
{
    // --policy NAME=DIR, repeated, names several policies (Models:Policies); a plain --policy DIR is the one-policy case.
    builder.Configuration.AddEnvironmentVariables(prefix: "QSERVICE__").AddCommandLine(CommandLine.Expand(args), CommandLine.SwitchMappings);
    // Every section is checked here, before anything starts: a bad setting stops the process with the reason.
    server = StartupSettings.Check(builder.Configuration);
}
catch (ConfigurationException e)
{
    Console.Error.WriteLine($"qservice: invalid configuration: {e.Message}");
    return 1;
}
// A busy port or an address that is not this machine's: which setting, which port, what to do; before the models load.
if (BindFailure.Check(server) is string unbindable)
{
    Console.Error.WriteLine($"qservice: {unbindable}");
    return 1;
}

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
catch (ConfigurationException e)
{
    // A setting found wrong while starting (a missing keys file, a certificate without its key): the reason, exit 1.
    Console.Error.WriteLine($"qservice: invalid configuration: {e.Message}");
    return 1;
}
catch (Exception e) when (BindFailure.Describe(e, server) is string line)
{
    // The same, when another process took a port after the check.
    Console.Error.WriteLine($"qservice: {line}");
    return 1;
}
return Environment.ExitCode;
