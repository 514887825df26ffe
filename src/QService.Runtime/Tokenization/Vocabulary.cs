namespace QService.Runtime.Tokenization;

/// <summary>An entry of tokenizer.json's <c>added_tokens</c>: text matched in the input before the model runs.</summary>
internal sealed record AddedToken(int Id, string Content, bool LStrip, bool RStrip, bool Special);

/// <summary>Id-to-string table over the model vocabulary and the added tokens.</summary>
internal sealed class Vocabulary
{
    readonly string?[] _texts;
    readonly Dictionary<string, int> _addedIds = new(StringComparer.Ordinal);
    readonly Dictionary<string, int> _modelIds;

    public Vocabulary(IReadOnlyDictionary<string, int> model, IEnumerable<AddedToken> added, int? unknownTokenId, bool unknownTokenShowsText)
    {
        UnknownTokenId = unknownTokenId;
        UnknownTokenShowsText = unknownTokenShowsText;
        _modelIds = new Dictionary<string, int>(model, StringComparer.Ordinal);
        Added = added.ToDictionary(a => a.Id);
        int size = Math.Max(model.Count == 0 ? 0 : model.Values.Max() + 1, Added.Count == 0 ? 0 : Added.Keys.Max() + 1);
        _texts = new string?[size];
        foreach (var (text, id) in model)
            _texts[id] = text;
        foreach (var token in Added.Values)
        {
            _texts[token.Id] = token.Content;
            _addedIds.TryAdd(token.Content, token.Id);
        }
    }

    /// <summary>Max id + 1 over the model vocabulary and the added tokens.</summary>
    public int Size => _texts.Length;

    public IReadOnlyDictionary<int, AddedToken> Added { get; }

    /// <summary>The id the model emits for text it cannot spell (none with byte fallback or byte-level BPE).</summary>
    public int? UnknownTokenId { get; }

    /// <summary>True when HuggingFace reports an unknown token as the text it covers (Unigram), not as its vocabulary string (BPE).</summary>
    public bool UnknownTokenShowsText { get; }

    /// <summary>The vocabulary string of an id; null for ids that are not in the vocabulary.</summary>
    public string? TextOf(int id) => id >= 0 && id < _texts.Length ? _texts[id] : null;

    /// <summary>The id of a token string, looking at added tokens first as HuggingFace does.</summary>
    public int? Find(string content) =>
        _addedIds.TryGetValue(content, out int id) || _modelIds.TryGetValue(content, out id) ? id : null;
}
