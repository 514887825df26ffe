using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace QService.Host.Hosting;

/// <summary>
/// An endpoint that cannot be bound (a busy port, an address that is not this machine's), as one line that names
/// the setting, the address and the port, and what to do: checked before anything starts, and said the same way
/// if Kestrel still fails to bind later (another process took the port in between).
/// </summary>
public static partial class BindFailure
{
    /// <summary>Binds and releases every endpoint; the line for the first that cannot be bound, or null.</summary>
    public static string? Check(ServerOptions server)
    {
        foreach (var (name, port, flag, address) in Endpoints(server))
        {
            try
            {
                using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(address, port));
                socket.Listen();
            }
            catch (SocketException e)
            {
                return Line(server, name, port, flag, address.ToString(), e);
            }
        }
        return null;
    }

    /// <summary>The line for an exception that is a bind failure at start-up; null when it is not one.</summary>
    public static string? Describe(Exception error, ServerOptions server)
    {
        if (Inner<SocketException>(error) is not { } socket) return null;
        var url = BoundUrl().Match(Inner<IOException>(error)?.Message ?? "");
        if (!url.Success) return $"an endpoint cannot be bound ({socket.Message}); check Server:BindAddress (--bind) and the ports";
        int port = int.Parse(url.Groups["port"].Value);
        var (name, _, flag, _) = Endpoints(server).FirstOrDefault(e => e.Port == port);
        return Line(server, name, port, flag, url.Groups["host"].Value.Trim('[', ']'), socket);
    }

    static string Line(ServerOptions server, string? name, int port, string? flag, string host, SocketException e)
    {
        string setting = name is null ? $"port {port}" : $"Server:{name} {port}";
        string addressSetting = name == "HttpPort" && !string.IsNullOrEmpty(server.ManagementBindAddress)
            ? "Server:ManagementBindAddress"
            : "Server:BindAddress (--bind)";
        return e.SocketErrorCode switch
        {
            SocketError.AddressAlreadyInUse => $"{setting} is in use by another process on {host}; choose another with {flag ?? "its setting"}" +
                (name == "HttpApiPort" ? ", or 0 to turn the JSON API off" : ""),
            SocketError.AddressNotAvailable => $"{setting} cannot be bound: {host} is not an address of this machine; " +
                $"set {addressSetting} to one of its addresses, e.g. 127.0.0.1 or 0.0.0.0",
            SocketError.AccessDenied => $"{setting} on {host} needs privileges this process does not have; use a port above 1023",
            _ => $"{setting} on {host} cannot be bound: {e.Message}",
        };
    }

    static IEnumerable<(string Name, int Port, string Flag, IPAddress Address)> Endpoints(ServerOptions server)
    {
        return ServerOptionsProblems.Ports(server).Where(p => p.Port > 0)
            .Select(p => (p.Name, p.Port, p.Flag, p.Name == "HttpPort" ? server.ManagementAddress : server.ApiAddress));
    }

    static T? Inner<T>(Exception? e) where T : Exception
    {
        for (; e != null; e = e.InnerException) if (e is T found) return found;
        return null;
    }

    [GeneratedRegex(@"Failed to bind to address \w+://(?<host>\[[^\]]+\]|[^:/]+):(?<port>\d+)")]
    private static partial Regex BoundUrl();
}
