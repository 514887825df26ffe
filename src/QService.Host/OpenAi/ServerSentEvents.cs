using System.Text.Json.Nodes;

namespace QService.Host.OpenAi;

/// <summary>
/// <c>stream: true</c>: the finished choices as server-sent events, one chunk per choice, then (with stream_options.include_usage)
/// a chunk with no choices and the usage, then <c>data: [DONE]</c>. The engine returns a sample when it has finished, so the
/// chunks come when the whole request is done, not token by token; clients that read streams get the same text.
/// </summary>
public static class ServerSentEvents
{
    /// <param name="chunkObject">"text_completion" (completions) or "chat.completion.chunk"</param>
    public static async Task SendAsync(OpenAiCall call, CompletionResponse response, IReadOnlyList<JsonObject> choices, JsonObject usage,
        string? chunkObject = null)
    {
        var http = call.Http;
        bool includeUsage = JsonFields.Get(call.Body, "stream_options") is { } o && JsonFields.Bool(o, "include_usage", false);
        http.Response.StatusCode = 200;
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        var chunk = response with { Object = chunkObject ?? response.Object };
        foreach (var choice in choices)
            await Send(http, chunk.Json([choice], null).ToJsonString(OpenAiEndpoint.Output));
        if (includeUsage) await Send(http, chunk.Json([], usage).ToJsonString(OpenAiEndpoint.Output));
        await Send(http, "[DONE]");
    }

    static async Task Send(HttpContext http, string data)
    {
        await http.Response.WriteAsync($"data: {data}\n\n", http.RequestAborted);
        await http.Response.Body.FlushAsync(http.RequestAborted);
    }
}
