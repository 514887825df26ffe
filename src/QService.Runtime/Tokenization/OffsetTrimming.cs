using System.Text.Json.Nodes;

namespace QService.Runtime.Tokenization;

/// <summary>
/// The offset trimming of a ByteLevel (trim_offsets: true) or RobertaProcessing post-processor: HuggingFace
/// moves token offsets inward past leading and trailing spaces, except the one space it prefixed to the first
/// token when add_prefix_space is set. The native library gets no post-processor, so we repeat it here.
/// </summary>
internal sealed class OffsetTrimming(bool addPrefixSpace)
{
    const char ByteLevelSpace = 'Ġ';

    /// <summary>The trimming the tokenizer.json post-processor asks for; null when it asks for none.</summary>
    public static OffsetTrimming? Find(JsonNode? processor)
    {
        if (processor is not JsonObject obj)
            return null;
        return (string?)obj["type"] switch
        {
            "Sequence" => (obj["processors"] as JsonArray ?? []).Select(Find).FirstOrDefault(t => t is not null),
            "ByteLevel" when (bool?)obj["trim_offsets"] == true => new OffsetTrimming((bool?)obj["add_prefix_space"] ?? true),
            "RobertaProcessing" when (bool?)obj["trim_offsets"] ?? true => new OffsetTrimming((bool?)obj["add_prefix_space"] ?? true),
            _ => null,
        };
    }

    public void Apply(string[] tokens, TokenOffset[] offsets)
    {
        for (int i = 0; i < tokens.Length; i++)
        {
            var (start, end) = offsets[i];
            int leading = CountSpaces(tokens[i]);
            int trailing = CountSpaces(tokens[i].Reverse());
            bool first = i == 0 || start == 0;
            if (leading > 0 && !(first && addPrefixSpace && leading == 1))
                start = Math.Min(start + leading, end);
            if (trailing > 0 && end >= trailing)
                end = Math.Max(end - trailing, start);
            offsets[i] = new TokenOffset(start, end);
        }
    }

    static int CountSpaces(IEnumerable<char> chars) => chars.TakeWhile(c => c == ByteLevelSpace || char.IsWhiteSpace(c)).Count();
}
