using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.Features;
using QService.Engine;
using QService.Host.Security;
using QService.Host.Telemetry;

namespace QService.Host.OpenAi;

/// <summary>
/// What every OpenAI-compatible route shares: the API key (when keys are on), a bounded JSON body, errors in OpenAI's shape with
/// their HTTP status, the request metrics under the route's path, and one log line per request, as the gRPC calls have.
/// </summary>
public sealed class OpenAiEndpoint(HostMetrics metrics, ApiKeys keys, ILogger<OpenAiEndpoint> logger, long maxBodyBytes)
{
    /// <summary>A handler returns the JSON to send, or null when it wrote the response itself (streaming).</summary>
    public RequestDelegate Handle(string route, Func<OpenAiCall, Task<JsonNode?>> handler) => async http =>
    {
        var sw = Stopwatch.StartNew();
        string status = "OK", detail = "";
        OpenAiCall? call = null;
        try
        {
            string caller = Authenticate(http);
            call = new OpenAiCall(http, caller, HttpMethods.IsPost(http.Request.Method) ? await ReadBody(http) : EmptyObject);
            var result = await handler(call);
            if (result != null) await WriteJson(http, 200, result);
        }
        catch (Exception e) when (e is OperationCanceledException && http.RequestAborted.IsCancellationRequested)
        {
            status = "Cancelled";
        }
        catch (Exception e)
        {
            var error = e switch
            {
                OpenAiException o => o,
                ScoringException s => OpenAiException.From(s),
                _ => Unexpected(e),
            };
            (status, detail) = (error.MetricStatus, error.Message);
            if (!http.Response.HasStarted) await WriteJson(http, error.Status, ErrorBody(error));
        }
        finally
        {
            metrics.Record(route, status, sw.Elapsed);
            var level = status is "OK" or "Cancelled" ? LogLevel.Information : LogLevel.Warning;
            logger.Log(level, "{Rpc:l} {Status:l} items={Items} tokens={Tokens} policy={Policy:l} in {ElapsedMs:F1} ms {Detail:l}",
                route, status, call?.Items ?? 0, call?.Tokens ?? 0, call?.Policy ?? "default", sw.Elapsed.TotalMilliseconds, detail);
        }
    };

    static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement;

    string Authenticate(HttpContext http)
    {
        if (!keys.Enabled) return $"connection:{http.Connection.Id}";
        string? name = keys.Match(http.Request.Headers.Authorization.ToString());
        return name is null
            ? throw new OpenAiException(401, "this server requires an API key: send the header 'Authorization: Bearer <key>' with a key it was given",
                null, "invalid_api_key")
            : $"key:{name}";
    }

    /// <summary>The body as JSON, refused past the limit before it is read whole (413) and when it is not a JSON object (400).</summary>
    async Task<JsonElement> ReadBody(HttpContext http)
    {
        var tooLarge = new OpenAiException(413, $"the request body is larger than the limit of {maxBodyBytes:N0} bytes (64 bytes per token of " +
            "Limits:MaxTokensPerRequest, plus 1 MiB); split it", null, "request_too_large");
        if (http.Request.ContentLength > maxBodyBytes) throw tooLarge;
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = maxBodyBytes;
        try
        {
            using var doc = await JsonDocument.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw OpenAiException.Invalid("the request body must be a JSON object");
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw OpenAiException.Invalid($"the request body is not valid JSON: {e.Message}");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw tooLarge;
        }
    }

    OpenAiException Unexpected(Exception e)
    {
        string id = Guid.NewGuid().ToString("N")[..12];
        logger.LogError(e, "Unexpected error {ErrorId}: {Message}", id, e.Message);
        return new OpenAiException(500, $"internal error; it has been logged as {id}", null, "internal");
    }

    public static JsonObject ErrorBody(OpenAiException e) => new()
    {
        ["error"] = new JsonObject { ["message"] = e.Message, ["type"] = e.Type, ["param"] = e.Param, ["code"] = e.Code ?? e.Type },
    };

    /// <summary>Readable text: quotes and angle brackets as themselves (the body is JSON, never HTML).</summary>
    public static readonly JsonSerializerOptions Output = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task WriteJson(HttpContext http, int status, JsonNode body)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(body.ToJsonString(Output), http.RequestAborted);
    }
}
