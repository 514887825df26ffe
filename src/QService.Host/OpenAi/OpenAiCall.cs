using System.Text.Json;

namespace QService.Host.OpenAi;

/// <summary>One request to an OpenAI-compatible route: its parsed body, who sent it, and what the log line reports about it.</summary>
public sealed class OpenAiCall(HttpContext http, string caller, JsonElement body)
{
    public HttpContext Http { get; } = http;
    /// <summary>The fair-queueing caller: the API key's name when keys are on, else the connection (as on the gRPC port).</summary>
    public string Caller { get; } = caller;
    /// <summary>The JSON body (an empty object for GET).</summary>
    public JsonElement Body { get; } = body;
    public CancellationToken Cancellation => Http.RequestAborted;
    /// <summary>For the log line: prompts or items, tokens computed, the policy named.</summary>
    public int Items { get; set; }
    public int Tokens { get; set; }
    public string Policy { get; set; } = "default";
}
