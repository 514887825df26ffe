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

    /// <summary>JSON over HTTP/1.1 (the unary RPCs, e.g. POST /v1/score): this port, on BindAddress. 0 turns it off. Default 50052.</summary>
    public int HttpApiPort { get; set; } = 50052;

    /// <summary>
    /// Address of the management endpoint; empty: the same as BindAddress (e.g. keep metrics on loopback while serving
    /// gRPC on all interfaces).
    /// </summary>
    public string? ManagementBindAddress { get; set; }

    /// <summary>The API endpoints' address, parsed (valid once <see cref="ServerOptionsProblems"/> found no problem).</summary>
    public System.Net.IPAddress ApiAddress => System.Net.IPAddress.Parse(BindAddress);

    /// <summary>The management endpoint's address, parsed: ManagementBindAddress, else BindAddress.</summary>
    public System.Net.IPAddress ManagementAddress =>
        string.IsNullOrEmpty(ManagementBindAddress) ? ApiAddress : System.Net.IPAddress.Parse(ManagementBindAddress);

    /// <summary>
    /// On SIGTERM: seconds to finish accepted work (readiness 503, health NOT_SERVING and new calls UNAVAILABLE
    /// meanwhile) before the process exits. Default 30; the compose file's stop grace period is longer.
    /// </summary>
    public double DrainSeconds { get; set; } = 30;

    /// <summary>Serve gRPC server reflection (lets grpcurl list the API). Default true.</summary>
    public bool EnableReflection { get; set; } = true;

    /// <summary>File of API keys (a <c>name:key</c> or bare key per line); with it, or QSERVICE_API_KEYS, every call needs one. Default: none (off).</summary>
    public string? ApiKeysFile { get; set; }

    /// <summary>PEM certificate and private key: the gRPC port speaks TLS. Default: none (plain HTTP/2).</summary>
    public string? TlsCertificatePath { get; set; }
    public string? TlsKeyPath { get; set; }

    /// <summary>PEM CA certificate: with TLS on, clients must present a certificate it issued (mutual TLS).</summary>
    public string? TlsClientCaPath { get; set; }

    /// <summary>Open connections per port; more wait in the accept queue. Default 1024.</summary>
    public int MaxConnections { get; set; } = 1024;

    /// <summary>Concurrent HTTP/2 streams (calls) per connection. Default 100.</summary>
    public int MaxStreamsPerConnection { get; set; } = 100;

    /// <summary>Ping an idle HTTP/2 connection after this many seconds and drop it if the ping is not answered in as many again. Default 30.</summary>
    public double KeepAlivePingSeconds { get; set; } = 30;

    /// <summary>Console log format: "json" (one JSON object per line), "text", or "auto" (text on a terminal, else JSON). Default auto.</summary>
    public string LogFormat { get; set; } = "auto";
}
