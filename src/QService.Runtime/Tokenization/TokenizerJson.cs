using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tokenizers.DotNet;

namespace QService.Runtime.Tokenization;

/// <summary>
/// What we read from a tokenizer.json ourselves (the native library exposes ids only), and the sanitized
/// copy we hand to the native library.
/// </summary>
internal sealed class TokenizerJson
{
    static readonly string[] SupportedModels = ["BPE", "Unigram"];

    readonly JsonObject _root;

    TokenizerJson(string path, JsonObject root, Vocabulary vocabulary, TextPipeline pipeline)
    {
        Path = path;
        _root = root;
        Vocabulary = vocabulary;
        Pipeline = pipeline;
    }

    public string Path { get; }
    public Vocabulary Vocabulary { get; }
    public TextPipeline Pipeline { get; }

    /// <summary>The post-processor as written in the file (the native library gets none, see <see cref="CreateNative"/>).</summary>
    public JsonNode? PostProcessor => _root["post_processor"];

    public static TokenizerJson Read(string path)
    {
        var root = JsonFile.ReadObject(path);
        if (root["model"] is not JsonObject model)
            throw new TokenizerLoadException(path, "has no \"model\" object; is this a HuggingFace tokenizer.json?");
        try
        {
            string type = ModelType(path, model);
            var modelVocab = ReadModelVocab(path, model, type);
            bool unigram = type == "Unigram";
            int? unknownId = unigram ? (int?)model["unk_id"] : FindId(modelVocab, (string?)model["unk_token"]);
            var vocabulary = new Vocabulary(modelVocab, ReadAddedTokens(root), unknownId, unknownTokenShowsText: unigram);
            var pipeline = TextPipeline.FromJson(root["normalizer"], root["pre_tokenizer"], (bool?)model["byte_fallback"] ?? false);
            return new TokenizerJson(path, root, vocabulary, pipeline);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            throw new TokenizerLoadException(path, $"has an unexpected layout: {e.Message}", e);
        }
    }

    /// <summary>
    /// Loads the native tokenizer from a temporary sanitized copy: no truncation or padding (they would cut or
    /// pad our inputs), no post-processor (its encode always adds special tokens; we add BOS ourselves), and
    /// every added token non-special (its decode always skips special tokens; we filter them ourselves).
    /// </summary>
    public Tokenizer CreateNative()
    {
        var copy = (JsonObject)_root.DeepClone();
        copy["truncation"] = null;
        copy["padding"] = null;
        copy["post_processor"] = null;
        foreach (var token in copy["added_tokens"] as JsonArray ?? [])
            if (token is JsonObject added)
                added["special"] = false;

        string tempPath = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"qservice-tokenizer-{Guid.NewGuid():N}.json");
        try
        {
            using (var stream = File.Create(tempPath))
            using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                copy.WriteTo(writer);
            return new Tokenizer(vocabPath: tempPath);
        }
        catch (TokenizerException e)
        {
            throw new TokenizerLoadException(Path, $"rejected by the HuggingFace tokenizers library: {e.Message}", e);
        }
        finally
        {
            File.Delete(tempPath);
        }
    }

    static string ModelType(string path, JsonObject model)
    {
        string type = (string?)model["type"] ?? (model["vocab"] is JsonArray ? "Unigram" : model["merges"] is not null ? "BPE" : "(none)");
        return SupportedModels.Contains(type)
            ? type
            : throw new TokenizerLoadException(path, $"unsupported model type '{type}' (supported: {string.Join(", ", SupportedModels)})");
    }

    static Dictionary<string, int> ReadModelVocab(string path, JsonObject model, string type)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        switch (model["vocab"])
        {
            case JsonObject bpe: // { "token": id, ... }
                foreach (var (token, id) in bpe)
                    vocab[token] = CheckId((int?)id ?? -1, token);
                break;
            case JsonArray unigram: // [ ["piece", score], ... ], id = position
                for (int id = 0; id < unigram.Count; id++)
                    vocab.TryAdd((string?)unigram[id]?[0] ?? throw new FormatException($"vocab entry {id} has no piece"), id);
                break;
            default:
                throw new TokenizerLoadException(path, $"model type '{type}' has no \"vocab\"");
        }
        return vocab;
    }

    static IEnumerable<AddedToken> ReadAddedTokens(JsonObject root)
    {
        foreach (var node in root["added_tokens"] as JsonArray ?? [])
        {
            if (node is not JsonObject)
                throw new FormatException("an added token is not an object");
            string content = (string?)node["content"] ?? throw new FormatException("an added token has no content");
            yield return new AddedToken(CheckId((int?)node["id"] ?? -1, content), content,
                LStrip: (bool?)node["lstrip"] ?? false, RStrip: (bool?)node["rstrip"] ?? false, Special: (bool?)node["special"] ?? false);
        }
    }

    static int? FindId(Dictionary<string, int> vocab, string? token) =>
        token is not null && vocab.TryGetValue(token, out int id) ? id : null;

    static int CheckId(int id, string token) =>
        id >= 0 ? id : throw new FormatException($"token '{token}' has no valid id");
}

/// <summary>Reads a JSON object from a file, turning every failure into a <see cref="TokenizerLoadException"/>.</summary>
internal static class JsonFile
{
    public static JsonObject ReadObject(string path)
    {
        JsonNode? node;
        try
        {
            using var stream = File.OpenRead(path);
            node = JsonNode.Parse(stream, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new TokenizerLoadException(path, $"is not valid JSON: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new TokenizerLoadException(path, $"cannot be read: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new TokenizerLoadException(path, $"cannot be read: {e.Message}", e);
        }
        return node as JsonObject ?? throw new TokenizerLoadException(path, "does not hold a JSON object");
    }
}
