using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using QService.Host.Grpc;
using QService.Host.Security;
using QService.Host.Telemetry;

namespace QService.Host.Rewards;

/// <summary>A request to a reward route that is wrong in the route's own terms (a field of its JSON), with the status it gets.</summary>
public sealed class RouteException(StatusCode status, string message) : Exception(message)
{
    public StatusCode Status { get; } = status;

    public static RouteException Invalid(string message) => new(StatusCode.InvalidArgument, message);
}

/// <summary>What a route handler gets: the parsed body and who is calling (for fair batching).</summary>
public sealed record RouteRequest(JsonNode? Body, string Caller, CancellationToken Cancellation);

/// <summary>What a route handler answers: the JSON to send, and the items and tokens it scored (for the log line).</summary>
public sealed record RouteAnswer(object Json, int Items, int Tokens);

/// <summary>
/// What every reward route shares with the gRPC calls: the API key check, a bounded body, errors as JSON with the HTTP status of
/// their gRPC code, the request metrics under the route's path, and one log line per request.
/// </summary>
public sealed class RouteCall(ApiKeys keys, HostMetrics metrics, ILogger<RouteCall> logger, int maxBodyBytes)
{
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public async Task RunAsync(HttpContext ctx, string route, Func<RouteRequest, Task<RouteAnswer>> handler)
    {
        var sw = Stopwatch.StartNew();
        var status = StatusCode.OK;
        string detail = "";
        var answer = new RouteAnswer(new { }, 0, 0);
        try
        {
            string caller = Authenticate(ctx);
            var body = await ReadBodyAsync(ctx.Request, ctx.RequestAborted);
            answer = await handler(new RouteRequest(body, caller, ctx.RequestAborted));
            await ctx.Response.WriteAsJsonAsync(answer.Json, answer.Json.GetType(), Json, ctx.RequestAborted);
        }
        catch (Exception e)
        {
            (status, detail) = e is RouteException r ? (r.Status, r.Message) : Restated(GrpcErrors.ToRpc(e, logger));
            if (!ctx.Response.HasStarted && !ctx.RequestAborted.IsCancellationRequested)
            {
                ctx.Response.StatusCode = HttpStatus(status);
                await ctx.Response.WriteAsJsonAsync(new { code = Name(status), message = detail }, Json, CancellationToken.None);
            }
        }
        finally
        {
            metrics.Record(route, status.ToString(), sw.Elapsed);
            var level = status is StatusCode.OK or StatusCode.Cancelled ? LogLevel.Information : LogLevel.Warning;
            logger.Log(level, "{Rpc:l} {Status:l} items={Items} tokens={Tokens} in {ElapsedMs:F1} ms {Detail:l}",
                route, status.ToString(), answer.Items, answer.Tokens, sw.Elapsed.TotalMilliseconds, detail);
        }
    }

    static (StatusCode, string) Restated(RpcException e) => (e.StatusCode, e.Status.Detail);

    /// <summary>The caller's key name when keys are on (401 without a valid one), else the connection.</summary>
    string Authenticate(HttpContext ctx)
    {
        if (!keys.Enabled) return $"connection:{ctx.Connection.Id}";
        return keys.Match(ctx.Request.Headers.Authorization.ToString()) is string name
            ? $"key:{name}"
            : throw new RouteException(StatusCode.Unauthenticated,
                "this server requires an API key: send the header 'authorization: Bearer <key>' with a key it was given");
    }

    /// <summary>The body as JSON, refused past the limit (the gRPC receive limit) before more of it is read.</summary>
    async Task<JsonNode?> ReadBodyAsync(HttpRequest request, CancellationToken cancellation)
    {
        string tooLarge = $"the request body is larger than the limit of {maxBodyBytes:N0} bytes (64 bytes per token of Limits:MaxTokensPerRequest, " +
            "plus 1 MiB); split it";
        if (request.ContentLength > maxBodyBytes) throw new RouteException(StatusCode.ResourceExhausted, tooLarge);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellation)) > 0)
        {
            if (buffer.Length + read > maxBodyBytes) throw new RouteException(StatusCode.ResourceExhausted, tooLarge);
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0) throw RouteException.Invalid("the request has no body; send a JSON object");
        try { return JsonNode.Parse(buffer.ToArray()); }
        catch (JsonException e) { throw RouteException.Invalid($"the request body is not valid JSON: {e.Message}"); }
    }

    public static int HttpStatus(StatusCode status) => status switch
    {
        StatusCode.InvalidArgument => StatusCodes.Status400BadRequest,
        StatusCode.Unauthenticated => StatusCodes.Status401Unauthorized,
        StatusCode.ResourceExhausted => StatusCodes.Status429TooManyRequests,
        StatusCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
        StatusCode.Cancelled => 499,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>INVALID_ARGUMENT and so on, as gRPC and the transcoded routes spell a status.</summary>
    static string Name(StatusCode status) => status switch
    {
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.Unauthenticated => "UNAUTHENTICATED",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        StatusCode.Unavailable => "UNAVAILABLE",
        StatusCode.Cancelled => "CANCELLED",
        _ => "INTERNAL",
    };
}
