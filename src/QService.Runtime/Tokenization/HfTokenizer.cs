using Tokenizers.DotNet;

namespace QService.Runtime.Tokenization;

/// <summary>
/// A HuggingFace tokenizer loaded from tokenizer.json (+ tokenizer_config.json). Ids and decoding come from
/// HuggingFace's own Rust tokenizers (via Tokenizers.DotNet); token strings and code-point offsets, which that
/// binding does not expose, are computed here to equal HuggingFace's. Thread-safe after loading.
/// </summary>
public sealed class HfTokenizer : IDisposable
{
    const string TokenizerFile = "tokenizer.json";
    const string ConfigFile = "tokenizer_config.json";

    readonly Tokenizer _native;
    readonly Vocabulary _vocabulary;
    readonly TextPipeline _pipeline;
    readonly OffsetAligner _aligner;
    bool _disposed;

    HfTokenizer(Tokenizer native, TokenizerJson json, SpecialTokenSettings special, (ChatTemplate? Template, string? Problem) chat)
    {
        (ChatTemplate, ChatTemplateProblem) = chat;
        _native = native;
        _vocabulary = json.Vocabulary;
        _pipeline = json.Pipeline;
        _aligner = new OffsetAligner(_vocabulary, _pipeline, OffsetTrimming.Find(json.PostProcessor));
        BosTokenId = special.BosTokenId;
        EosTokenId = special.EosTokenId;
        AddBosToken = special.AddBosToken;
        SpecialTokenIds = _vocabulary.Added.Values.Where(t => t.Special).Select(t => t.Id)
            .Concat(new[] { BosTokenId, EosTokenId }.OfType<int>())
            .ToHashSet();
    }

    /// <summary>Max id + 1 over the model vocabulary and the added tokens.</summary>
    public int VocabSize => _vocabulary.Size;

    public int? BosTokenId { get; }
    public int? EosTokenId { get; }

    /// <summary>Whether <c>Encode(text, addSpecialTokens: true)</c> prepends <see cref="BosTokenId"/>.</summary>
    public bool AddBosToken { get; }

    /// <summary>The checkpoint's chat template (chat_template.jinja, or tokenizer_config.json's chat_template); null when it has none usable.</summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>Why a template the checkpoint has is not usable (e.g. it does not parse); null when there is none or it is.</summary>
    public string? ChatTemplateProblem { get; }

    /// <summary>Added tokens marked special, plus the BOS and EOS tokens (transformers treats those as special too).</summary>
    public IReadOnlySet<int> SpecialTokenIds { get; }

    /// <summary>
    /// Loads a tokenizer from a model folder (tokenizer.json, optional tokenizer_config.json and chat_template.jinja)
    /// or from a tokenizer.json file (the files beside it are used too).
    /// </summary>
    /// <exception cref="TokenizerLoadException">A file is missing, is not valid JSON, or is not supported.</exception>
    public static HfTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        bool isFolder = Directory.Exists(path);
        string tokenizerPath = isFolder ? Path.Combine(path, TokenizerFile) : path;
        if (!File.Exists(tokenizerPath))
            throw new TokenizerLoadException(path, isFolder ? $"the folder has no {TokenizerFile}" : "no such file or folder");
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!, ConfigFile);

        var json = TokenizerJson.Read(tokenizerPath);
        var special = SpecialTokenSettings.Resolve(json, File.Exists(configPath) ? configPath : null);
        var chat = ChatTemplateFiles.Load(Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!, File.Exists(configPath) ? configPath : null);
        return new HfTokenizer(json.CreateNative(), json, special, chat);
    }

    /// <summary>
    /// Encodes text as HuggingFace does. With <paramref name="addSpecialTokens"/>, BOS is prepended when
    /// <see cref="AddBosToken"/> (its offset is the empty span (0, 0)); nothing else is added.
    /// </summary>
    public TokenizedText Encode(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var input = new InputText(text);
        int[] ids = Array.ConvertAll(_native.Encode(input.Text), id => (int)id);
        var (tokens, offsets) = _aligner.Align(input, ids);
        if (addSpecialTokens && AddBosToken && BosTokenId is int bos)
            return new TokenizedText([bos, .. ids], [TokenText(bos), .. tokens], [new TokenOffset(0, 0), .. offsets]);
        return new TokenizedText(ids, tokens, offsets);
    }

    /// <summary>
    /// The ids alone, as <see cref="Encode"/> gives them, without the offset alignment (the costly part): for
    /// callers that need no token texts or offsets.
    /// </summary>
    public int[] EncodeIds(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(_disposed, this);
        int[] ids = Array.ConvertAll(_native.Encode(new InputText(text).Text), id => (int)id);
        return addSpecialTokens && AddBosToken && BosTokenId is int bos ? [bos, .. ids] : ids;
    }

    /// <summary>Decodes ids to text with the tokenizer's decoder; special tokens are kept unless asked otherwise.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not in the vocabulary.</exception>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var kept = new List<uint>(ids.Count);
        foreach (int id in ids)
        {
            CheckId(id);
            if (!skipSpecialTokens || !SpecialTokenIds.Contains(id))
                kept.Add((uint)id);
        }
        return kept.Count == 0 ? "" : _native.Decode([.. kept]);
    }

    /// <summary>The vocabulary string of an id, e.g. "Ġworld", "▁Hello", "&lt;0x0A&gt;".</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in the vocabulary.</exception>
    public string TokenText(int id)
    {
        CheckId(id);
        return _vocabulary.TextOf(id)!;
    }

    /// <summary>Readable text of a token for tables: bytes decoded (partial UTF-8 as \xNN), '▁' shown as a space.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in the vocabulary.</exception>
    public string TokenSurface(int id)
    {
        string text = TokenText(id);
        return _vocabulary.Added.ContainsKey(id) ? text : _pipeline.Surface(text);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _native.Dispose();
    }

    void CheckId(int id)
    {
        if (_vocabulary.TextOf(id) is null)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is not in the vocabulary (size {VocabSize})");
    }
}
