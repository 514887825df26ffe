using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Runtime.Loading;

namespace QService.Runtime.Adapters;

/// <summary>Typed reads of adapter_config.json's fields; a field of the wrong type is an error naming it. JSON null reads as absent.</summary>
sealed class ConfigFields(string path, JsonObject json)
{
    public string Path => path;

    public CheckpointException Fail(string field, string problem) => new($"{path}: {field} {problem}");

    public JsonNode? Node(string field) => json[field];

    T? Read<T>(string field, Func<JsonNode, T> read, string expected)
    {
        var node = json[field];
        if (node is null) return default;
        try { return read(node); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException)
        {
            throw Fail(field, $"is {node.ToJsonString()}; expected {expected}");
        }
    }

    public string? String(string field) => Read(field, n => n.GetValue<string>(), "a string");

    public bool? Bool(string field) => Read<bool?>(field, n => n.GetValue<bool>(), "true or false");

    public int? Int(string field) => Read<int?>(field, n => checked((int)n.GetValue<double>()), "an integer");

    public double? Double(string field) => Read<double?>(field, n => n.GetValue<double>(), "a number");

    /// <summary>A list of strings, or one string as a list of one (PEFT's layers_pattern takes both).</summary>
    public IReadOnlyList<string>? StringList(string field) => Read<IReadOnlyList<string>>(field,
        n => n is JsonArray a ? [.. a.Select(e => e!.GetValue<string>())] : [n.GetValue<string>()], "a list of strings");

    /// <summary>A list of integers, or one integer as a list of one (PEFT's layers_to_transform takes both).</summary>
    public IReadOnlyList<int>? IntList(string field) => Read<IReadOnlyList<int>>(field,
        n => n is JsonArray a ? [.. a.Select(e => e!.GetValue<int>())] : [n.GetValue<int>()], "a list of layer indices");

    /// <summary>A {regex: value} object in the file's order (PEFT takes the first key that matches).</summary>
    public IReadOnlyList<KeyValuePair<string, T>> Pattern<T>(string field, Func<JsonNode, T> value) => Read<IReadOnlyList<KeyValuePair<string, T>>>(field,
        n => [.. n.AsObject().Select(p => new KeyValuePair<string, T>(p.Key, value(p.Value!)))], "an object of {module regex: value}") ?? [];

    /// <summary>Whether the field is absent, null, false, 0, or an empty list or object: the option is off.</summary>
    public bool IsOff(string field) => json[field] switch
    {
        null => true,
        JsonArray a => a.Count == 0,
        JsonObject o => o.Count == 0,
        JsonValue v when v.TryGetValue(out bool b) => !b,
        JsonValue v when v.TryGetValue(out double d) => d == 0,
        _ => false,
    };
}
