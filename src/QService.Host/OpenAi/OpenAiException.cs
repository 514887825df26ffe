using QService.Engine;

namespace QService.Host.OpenAi;

/// <summary>An error in OpenAI's shape, {"error": {message, type, param, code}}, with its HTTP status.</summary>
public sealed class OpenAiException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>OpenAI's error type for a status: what its SDKs and clients switch on.</summary>
    public string Type => Status switch
    {
        401 => "authentication_error",
        404 or 400 or 413 => "invalid_request_error",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        _ => "server_error",
    };

    /// <summary>The gRPC status name the same failure has on the gRPC port: the request metrics' status label.</summary>
    public string MetricStatus => Status switch
    {
        400 => "InvalidArgument",
        401 => "Unauthenticated",
        404 => "NotFound",
        413 or 429 => "ResourceExhausted",
        503 => "Unavailable",
        _ => "Internal",
    };

    public static OpenAiException Invalid(string message, string? param = null) => new(400, message, param);

    /// <summary>The engine's errors, each with OpenAI's status; the field the message starts with becomes <c>param</c>.</summary>
    public static OpenAiException From(ScoringException e) => e.Kind switch
    {
        ScoringErrorKind.InvalidArgument => new(400, e.Message, ParamOf(e.Message)),
        ScoringErrorKind.ResourceExhausted => new(429, e.Message, null, "resource_exhausted"),
        ScoringErrorKind.Unavailable => new(503, e.Message, null, "unavailable"),
        _ => new(500, e.Message, null, "internal"),
    };

    /// <summary>The engine names the field it refuses first ("top_p is 2; ..."); in OpenAI's names where they differ.</summary>
    static string? ParamOf(string message)
    {
        string first = message.Split(' ', 2)[0];
        return first switch
        {
            "max_new_tokens" => "max_tokens",
            "n" or "temperature" or "top_p" or "top_k" or "alpha" or "seed" => first,
            _ when first.StartsWith("stop", StringComparison.Ordinal) => "stop",
            _ when message.StartsWith("item", StringComparison.Ordinal) => "prompt",
            _ => null,
        };
    }
}
