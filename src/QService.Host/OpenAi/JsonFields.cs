using System.Text.Json;

namespace QService.Host.OpenAi;

/// <summary>Reads a request's optional fields, refusing a wrong type with a 400 that names the field (OpenAI's <c>param</c>).</summary>
public static class JsonFields
{
    /// <summary>The field, or null when it is absent or JSON null (OpenAI clients send explicit nulls for unset options).</summary>
    public static JsonElement? Get(JsonElement body, string name) =>
        body.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public static string? String(JsonElement body, string name) => Get(body, name) is { } v
        ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(name, "a string")
        : null;

    public static bool Bool(JsonElement body, string name, bool fallback) => Get(body, name) is { } v
        ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Wrong(name, "true or false")
        : fallback;

    public static double? Number(JsonElement body, string name) => Get(body, name) is { } v
        ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Wrong(name, "a number")
        : null;

    public static long? Integer(JsonElement body, string name) => Get(body, name) is { } v
        ? v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long i) ? i : throw Wrong(name, "an integer")
        : null;

    /// <summary>An integer that must lie in [min, max].</summary>
    public static int? Int(JsonElement body, string name, int min, int max)
    {
        if (Integer(body, name) is not long i) return null;
        return i >= min && i <= max ? (int)i : throw OpenAiException.Invalid($"{name} is {i}; it must be between {min} and {max}", name);
    }

    /// <summary><c>stop</c>: a string or a list of strings.</summary>
    public static string[] Strings(JsonElement body, string name) => Get(body, name) switch
    {
        null => [],
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
            [.. a.EnumerateArray().Select(e => e.GetString()!)],
        _ => throw Wrong(name, "a string or a list of strings"),
    };

    /// <summary>A list of token ids.</summary>
    public static int[]? Ids(JsonElement value) =>
        value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out _))
            ? [.. value.EnumerateArray().Select(e => e.GetInt32())]
            : null;

    public static OpenAiException Wrong(string name, string what) => OpenAiException.Invalid($"{name} must be {what}", name);
}
