using System.Net;

namespace QService.Host.Hosting;

/// <summary>
/// What is wrong with the Server section, as sentences that name the setting and what to set it to (like
/// <see cref="Engine.OptionsProblems"/>).
/// </summary>
public static class ServerOptionsProblems
{
    public static IEnumerable<string> Of(ServerOptions s)
    {
        if (!IPAddress.TryParse(s.BindAddress, out var bind))
            yield return $"Server:BindAddress is '{s.BindAddress}'; use an IP address of this machine, e.g. 127.0.0.1 or 0.0.0.0 (--bind)";
        IPAddress? management = bind;
        if (!string.IsNullOrEmpty(s.ManagementBindAddress) && !IPAddress.TryParse(s.ManagementBindAddress, out management))
            yield return $"Server:ManagementBindAddress is '{s.ManagementBindAddress}'; use an IP address of this machine, or leave it empty for BindAddress";
        foreach (var (name, port, flag) in Ports(s))
            if (port is < 1 or > 65535 && !(name == "HttpApiPort" && port == 0))
                yield return $"Server:{name} is {port}; use a port from 1 to 65535 ({flag}){(name == "HttpApiPort" ? ", or 0 to turn the JSON API off" : "")}";
        // Two endpoints on one port of one address cannot both bind (the management port may sit on another address).
        var endpoints = Ports(s).Where(p => p.Port > 0).Select(p => (p.Name, p.Port, Address: p.Name == "HttpPort" ? management : bind, p.Flag)).ToList();
        for (int i = 0; i < endpoints.Count; i++)
            for (int j = i + 1; j < endpoints.Count; j++)
                if (endpoints[i].Port == endpoints[j].Port && Overlap(endpoints[i].Address, endpoints[j].Address))
                    yield return $"Server:{endpoints[i].Name} and Server:{endpoints[j].Name} are both {endpoints[i].Port}; " +
                        $"give each endpoint its own port ({endpoints[i].Flag}, {endpoints[j].Flag})";
        if (!double.IsFinite(s.DrainSeconds) || s.DrainSeconds < 0 || s.DrainSeconds > 3600)
            yield return $"Server:DrainSeconds is {s.DrainSeconds}; use 0 to 3600 seconds";
        if (s.MaxConnections < 1) yield return $"Server:MaxConnections is {s.MaxConnections}; it must be >= 1";
        if (s.MaxStreamsPerConnection < 1) yield return $"Server:MaxStreamsPerConnection is {s.MaxStreamsPerConnection}; it must be >= 1";
        if (!double.IsFinite(s.KeepAlivePingSeconds) || s.KeepAlivePingSeconds < 1 || s.KeepAlivePingSeconds > 86400)
            yield return $"Server:KeepAlivePingSeconds is {s.KeepAlivePingSeconds}; use 1 to 86400 seconds";
        if (s.LogFormat.Trim().ToLowerInvariant() is not ("auto" or "json" or "text"))
            yield return $"Server:LogFormat is '{s.LogFormat}'; use auto, json or text (--log-format)";
    }

    /// <summary>The endpoints' ports with their setting names and flags.</summary>
    public static IEnumerable<(string Name, int Port, string Flag)> Ports(ServerOptions s) =>
    [
        ("GrpcPort", s.GrpcPort, "--grpc-port"),
        ("HttpPort", s.HttpPort, "--http-port"),
        ("HttpApiPort", s.HttpApiPort, "--http-api-port"),
    ];

    /// <summary>
    /// Two bind addresses compete for a port when they are equal, or one is a wildcard of the other's family
    /// (0.0.0.0 covers IPv4 only; [::] is dual-stack and covers both).
    /// </summary>
    static bool Overlap(IPAddress? a, IPAddress? b) => a is null || b is null || a.Equals(b) || Covers(a, b) || Covers(b, a);

    static bool Covers(IPAddress wildcard, IPAddress other) =>
        wildcard.Equals(IPAddress.IPv6Any) || wildcard.Equals(IPAddress.Any) && other.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
}
