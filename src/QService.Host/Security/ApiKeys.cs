using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace QService.Host.Security;

/// <summary>
/// Optional API keys (off unless configured): every gRPC call but the standard health check must carry
/// <c>authorization: Bearer KEY</c>, or it gets UNAUTHENTICATED. Keys come from Server:ApiKeysFile (one
/// <c>name:key</c> or bare key per line) and the QSERVICE_API_KEYS variable (the same, comma-separated).
/// Keys are compared by their SHA-256 in constant time and never logged; a caller is known by its key's name.
/// </summary>
public sealed class ApiKeys
{
    public const string CallerItem = "qservice.caller";
    readonly List<(string Name, byte[] Hash)> _keys = [];

    public bool Enabled => _keys.Count > 0;
    public int Count => _keys.Count;

    public static ApiKeys Load(string? file, string? variable)
    {
        var keys = new ApiKeys();
        var lines = new List<string>();
        if (!string.IsNullOrEmpty(file))
        {
            if (!File.Exists(file)) throw new Hosting.ConfigurationException($"Server:ApiKeysFile '{file}' does not exist");
            lines.AddRange(File.ReadAllLines(file));
        }
        if (!string.IsNullOrEmpty(variable)) lines.AddRange(variable.Split(','));
        foreach (var raw in lines.Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            int colon = raw.IndexOf(':');
            var (name, key) = colon > 0 ? (raw[..colon], raw[(colon + 1)..]) : ($"key{keys._keys.Count + 1}", raw);
            if (key.Length < 16) throw new Hosting.ConfigurationException($"API key '{name}' is shorter than 16 characters; use a long random key");
            keys._keys.Add((name, Hash(key)));
        }
        return keys;
    }

    static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>The name of the key the header carries, or null when it carries none of them.</summary>
    public string? Match(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return null;
        var hash = Hash(authorization[7..].Trim());
        string? name = null;
        foreach (var (keyName, keyHash) in _keys)
            if (CryptographicOperations.FixedTimeEquals(hash, keyHash)) name ??= keyName;
        return name;
    }
}

/// <summary>Checks the API key of every call (when keys are on) before its handler runs.</summary>
public sealed class ApiKeyInterceptor(ApiKeys keys) : Interceptor
{
    void Check(ServerCallContext context)
    {
        if (!keys.Enabled || context.Method.StartsWith("/grpc.health.v1.Health/", StringComparison.Ordinal)) return;
        string? name = keys.Match(context.RequestHeaders.GetValue("authorization"));
        if (name is null)
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                "this server requires an API key: send the metadata 'authorization: Bearer <key>' with a key it was given"));
        context.GetHttpContext().Items[ApiKeys.CallerItem] = name;
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }
}
