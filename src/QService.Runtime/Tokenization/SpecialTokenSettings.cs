using System.Text.Json.Nodes;

namespace QService.Runtime.Tokenization;

/// <summary>
/// BOS/EOS ids and whether encoding with special tokens prepends BOS, resolved as HuggingFace transformers
/// does: tokenizer_config.json first (<c>add_bos_token</c>, <c>bos_token</c>, <c>eos_token</c>), otherwise the
/// tokenizer.json post-processor's TemplateProcessing (Llama-3 style "&lt;bos&gt; $A").
/// </summary>
internal sealed record SpecialTokenSettings(int? BosTokenId, int? EosTokenId, bool AddBosToken)
{
    public static SpecialTokenSettings Resolve(TokenizerJson tokenizer, string? configPath)
    {
        var template = Template.Find(tokenizer.PostProcessor, tokenizer.Vocabulary);
        if (configPath is null)
            return new SpecialTokenSettings(template.FirstSpecial, template.LastSpecial, template.FirstSpecial is not null);

        var config = JsonFile.ReadObject(configPath);
        var bos = ReadToken(config, "bos_token", configPath);
        bool addBos = ReadBool(config, "add_bos_token", configPath) ?? template.FirstSpecial is not null;
        int? bosId = bos is null ? template.FirstSpecial : tokenizer.Vocabulary.Find(bos);
        if (addBos && bosId is null)
            throw new TokenizerLoadException(configPath, $"adds a BOS token, but bos_token '{bos}' is not in the vocabulary");
        var eos = ReadToken(config, "eos_token", configPath);
        int? eosId = eos is null ? template.LastSpecial : tokenizer.Vocabulary.Find(eos);
        return new SpecialTokenSettings(bosId, eosId, addBos);
    }

    /// <summary>A special-token entry: either "text" or { "content": "text", ... }; null when absent.</summary>
    static string? ReadToken(JsonObject config, string key, string path) => config[key] switch
    {
        null => null,
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonObject obj when obj["content"] is JsonValue content && content.TryGetValue(out string? text) => text,
        _ => throw new TokenizerLoadException(path, $"\"{key}\" must be a string or an object with \"content\""),
    };

    static bool? ReadBool(JsonObject config, string key, string path) => config[key] switch
    {
        null => null,
        JsonValue value when value.TryGetValue(out bool flag) => flag,
        _ => throw new TokenizerLoadException(path, $"\"{key}\" must be true, false or null"),
    };

    /// <summary>The special tokens at the start and end of a TemplateProcessing "single" template.</summary>
    sealed record Template(int? FirstSpecial, int? LastSpecial)
    {
        static readonly Template None = new(null, null);

        public static Template Find(JsonNode? processor, Vocabulary vocabulary)
        {
            if (processor is not JsonObject obj)
                return None;
            if ((string?)obj["type"] == "Sequence")
                return (obj["processors"] as JsonArray ?? []).Select(p => Find(p, vocabulary)).FirstOrDefault(t => t != None) ?? None;
            if ((string?)obj["type"] != "TemplateProcessing" || obj["single"] is not JsonArray { Count: > 0 } single)
                return None;
            int? first = SpecialId(single[0], obj, vocabulary);
            int? last = single.Count > 1 ? SpecialId(single[^1], obj, vocabulary) : null;
            return new Template(first, last);
        }

        /// <summary>The id of a { "SpecialToken": { "id": name } } piece; null for a sequence piece.</summary>
        static int? SpecialId(JsonNode? piece, JsonObject processor, Vocabulary vocabulary)
        {
            if (piece?["SpecialToken"]?["id"] is not JsonValue nameValue || !nameValue.TryGetValue(out string? name))
                return null;
            var ids = processor["special_tokens"]?[name]?["ids"] as JsonArray;
            return ids is [JsonValue first, ..] && first.TryGetValue(out int id) ? id : vocabulary.Find(name);
        }
    }
}
