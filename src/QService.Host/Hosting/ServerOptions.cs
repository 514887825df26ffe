namespace QService.Host.Hosting;

/// <summary>Where the service listens (section "Server").</summary>
public sealed class ServerOptions
{
    /// <summary>Address both endpoints bind to. Default 127.0.0.1; the container image sets 0.0.0.0.</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>gRPC endpoint (HTTP/2 without TLS). Default 50051.</summary>
    public int GrpcPort { get; set; } = 50051;

    /// <summary>Management endpoint (HTTP/1.1): /healthz, /readyz and /metrics, nothing else. Default 8080.</summary>
    public int HttpPort { get; set; } = 8080;

    /// <summary>Console log format: "json" (one JSON object per line), "text", or "auto" (text on a terminal, else JSON). Default auto.</summary>
    public string LogFormat { get; set; } = "auto";
}
