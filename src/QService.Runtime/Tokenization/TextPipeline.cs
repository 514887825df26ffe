using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace QService.Runtime.Tokenization;

/// <summary>A code point of normalized text and the span of input code points [Start, End) it came from.</summary>
internal readonly record struct NormalizedChar(Rune Rune, int Start, int End);

/// <summary>
/// Re-creates the parts of a tokenizer.json normalizer and pre-tokenizer that change the text the model sees
/// (prepended and replaced space markers), keeping for every character the input span it came from, as
/// HuggingFace's NormalizedString alignments do (a prepended marker takes the span of the first character).
/// Pre-tokenizers that only split need nothing here. Unicode normalization forms and lowercasing are
/// re-created too; other normalizers (regex replace, strip, ...) are not, and the aligner's fallback absorbs
/// the difference.
/// </summary>
internal sealed class TextPipeline
{
    const string DefaultSpaceMarker = "\u2581"; // '▁', SentencePiece's visible space

    readonly List<ITextStep> _steps = [];
    readonly bool _byteFallback;
    string _spaceMarker = DefaultSpaceMarker;

    TextPipeline(bool byteFallback) => _byteFallback = byteFallback;

    /// <summary>True for byte-level BPE (GPT-2, Llama-3, Qwen2): vocabulary strings spell bytes, see <see cref="ByteLevelAlphabet"/>.</summary>
    public bool IsByteLevel { get; private set; }

    public static TextPipeline FromJson(JsonNode? normalizer, JsonNode? preTokenizer, bool byteFallback)
    {
        var pipeline = new TextPipeline(byteFallback);
        foreach (var step in Flatten(normalizer, "normalizers"))
            pipeline.AddNormalizer(step);
        foreach (var step in Flatten(preTokenizer, "pretokenizers"))
            pipeline.AddPreTokenizer(step);
        return pipeline;
    }

    /// <summary>The normalized text of input code points [start, end) as UTF-8 bytes with their input spans.</summary>
    public NormalizedSegment Normalize(InputText input, int start, int end)
    {
        var chars = new List<NormalizedChar>(end - start + 1);
        for (int cp = start; cp < end; cp++)
            chars.Add(new NormalizedChar(input.RuneAt(cp), cp, cp + 1));
        foreach (var step in _steps)
            step.Apply(chars, atInputStart: start == 0);
        return NormalizedSegment.From(chars, end);
    }

    /// <summary>The bytes a vocabulary string stands for, comparable with <see cref="NormalizedSegment.Bytes"/>.</summary>
    public byte[] TokenBytes(string token)
    {
        if (IsByteLevel)
            return ByteLevelBytes(token);
        return _byteFallback && TryParseByteToken(token, out byte b) ? [b] : Encoding.UTF8.GetBytes(token);
    }

    /// <summary>Human-readable text of a vocabulary string: bytes decoded, space markers shown as spaces.
    /// Bytes that are not a whole UTF-8 character are shown as \xNN.</summary>
    public string Surface(string token)
    {
        if (IsByteLevel)
            return RenderUtf8(ByteLevelBytes(token));
        if (_byteFallback && TryParseByteToken(token, out byte b))
            return RenderUtf8([b]);
        return token.Replace(_spaceMarker, " ", StringComparison.Ordinal);
    }

    void AddNormalizer(JsonObject step)
    {
        switch ((string?)step["type"])
        {
            case "Prepend" when step["prepend"] is JsonValue prepend:
                _steps.Add(new PrependStep(prepend.GetValue<string>(), onlyAtInputStart: false, unlessAlreadyPrefixed: false));
                break;
            case "Lowercase":
                _steps.Add(new LowercaseStep());
                break;
            case "NFC":
                _steps.Add(new UnicodeNormalizeStep(NormalizationForm.FormC));
                break;
            case "NFD":
                _steps.Add(new UnicodeNormalizeStep(NormalizationForm.FormD));
                break;
            case "NFKC":
                _steps.Add(new UnicodeNormalizeStep(NormalizationForm.FormKC));
                break;
            case "NFKD":
                _steps.Add(new UnicodeNormalizeStep(NormalizationForm.FormKD));
                break;
            case "Replace" when (step["pattern"]?["String"]) is JsonValue pattern:
                AddReplace(pattern.GetValue<string>(), step["content"]?.GetValue<string>() ?? "");
                break;
        }
    }

    void AddReplace(string from, string to)
    {
        _steps.Add(new ReplaceStep(from, to));
        if (from == " ")
            _spaceMarker = to;
    }

    void AddPreTokenizer(JsonObject step)
    {
        switch ((string?)step["type"])
        {
            case "ByteLevel":
                IsByteLevel = true;
                if ((bool?)step["add_prefix_space"] == true)
                    _steps.Add(new PrependStep(" ", onlyAtInputStart: false, unlessAlreadyPrefixed: true));
                break;
            case "Metaspace":
                AddMetaspace(step);
                break;
        }
    }

    void AddMetaspace(JsonObject step)
    {
        _spaceMarker = (string?)step["replacement"] ?? DefaultSpaceMarker;
        _steps.Add(new ReplaceStep(" ", _spaceMarker));
        // Older files have add_prefix_space (true = "always") instead of prepend_scheme.
        string scheme = (string?)step["prepend_scheme"] ?? ((bool?)step["add_prefix_space"] ?? true ? "always" : "never");
        if (scheme != "never")
            _steps.Add(new PrependStep(_spaceMarker, onlyAtInputStart: scheme == "first", unlessAlreadyPrefixed: true));
    }

    static IEnumerable<JsonObject> Flatten(JsonNode? node, string listKey)
    {
        if (node is not JsonObject obj)
            yield break;
        if ((string?)obj["type"] != "Sequence")
        {
            yield return obj;
            yield break;
        }
        foreach (var child in obj[listKey] as JsonArray ?? [])
            foreach (var step in Flatten(child, listKey))
                yield return step;
    }

    static byte[] ByteLevelBytes(string token)
    {
        var bytes = new List<byte>(token.Length);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in token.EnumerateRunes())
        {
            if (rune.IsBmp && ByteLevelAlphabet.TryGetByte((char)rune.Value, out byte b))
                bytes.Add(b);
            else
                bytes.AddRange(utf8[..rune.EncodeToUtf8(utf8)]);
        }
        return [.. bytes];
    }

    /// <summary>SentencePiece byte-fallback pieces look like "&lt;0x0A&gt;".</summary>
    static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    static string RenderUtf8(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder();
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out var rune, out int used) == OperationStatus.Done)
                text.Append(rune.ToString());
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"\\x{bytes[0]:X2}");
                used = 1;
            }
            bytes = bytes[used..];
        }
        return text.ToString();
    }
}
