using System.Text.Json.Nodes;

namespace QService.Runtime.Tokenization;

/// <summary>
/// Finds a checkpoint's chat template as transformers 4.57 does: <c>chat_template.jinja</c> beside tokenizer.json
/// (it wins), else <c>chat_template</c> in tokenizer_config.json, a string or a list of {name, template} (the one
/// named "default"); and the special-token strings it renders with: special_tokens_map, i.e. the set ones of
/// bos/eos/unk/sep/pad/cls/mask_token (strings or AddedToken objects) and additional_special_tokens.
/// </summary>
internal static class ChatTemplateFiles
{
    public const string JinjaFile = "chat_template.jinja";
    static readonly string[] TokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    /// <summary>The template, or null with why there is none usable (null, null: the checkpoint has none).</summary>
    public static (ChatTemplate? Template, string? Problem) Load(string folder, string? configPath)
    {
        var config = configPath is null ? null : JsonFile.ReadObject(configPath);
        string jinjaPath = Path.Combine(folder, JinjaFile);
        var (source, problem) = File.Exists(jinjaPath) ? (File.ReadAllText(jinjaPath), null) : FromConfig(config);
        if (source is null) return (null, problem);
        try
        {
            return (new ChatTemplate(source, SpecialTokens(config)), null);
        }
        catch (ChatTemplateException e)
        {
            return (null, e.Message);
        }
    }

    static (string? Source, string? Problem) FromConfig(JsonObject? config) => config?["chat_template"] switch
    {
        null => (null, null),
        JsonValue value when value.TryGetValue(out string? text) => (text, null),
        JsonArray named => Default(named),
        _ => (null, "tokenizer_config.json's chat_template is neither a string nor a list of {name, template}"),
    };

    static (string? Source, string? Problem) Default(JsonArray named)
    {
        foreach (var entry in named)
            if ((string?)entry?["name"] == "default" && entry?["template"] is JsonValue value && value.TryGetValue(out string? text))
                return (text, null);
        return (null, "tokenizer_config.json has several chat templates and none named \"default\"");
    }

    static Dictionary<string, JsonNode?> SpecialTokens(JsonObject? config)
    {
        var tokens = new Dictionary<string, JsonNode?>();
        if (config is null) return tokens;
        foreach (string key in TokenKeys)
            if (Content(config[key]) is { Length: > 0 } text)
                tokens[key] = text;
        if (config["additional_special_tokens"] is JsonArray extra && extra.Select(Content).OfType<string>().ToArray() is { Length: > 0 } texts)
            tokens["additional_special_tokens"] = new JsonArray([.. texts.Select(t => (JsonNode)t)]);
        return tokens;
    }

    /// <summary>A special token written as "text" or as an AddedToken object { "content": "text", ... }.</summary>
    static string? Content(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonObject obj when obj["content"] is JsonValue content && content.TryGetValue(out string? text) => text,
        _ => null,
    };
}
