using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>One case of tests/fixtures/tokenizers/*/expected.json (HuggingFace tokenizers' own output).</summary>
public sealed record ExpectedCase(string Text, int[] Ids, string[] Tokens, int[][] Offsets, int[] IdsWithSpecialTokens, string Decoded);

/// <summary>The reference tokenizer fixtures, each tokenizer loaded once and shared by all tests (it is thread-safe).</summary>
public static class TokenizerFixtures
{
    public static readonly string[] Models = ["gpt2", "phi-3-mini"];

    static readonly ConcurrentDictionary<string, Lazy<HfTokenizer>> Loaded = new();
    static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string Folder(string model) => Fixtures.Path("tokenizers", model);

    public static HfTokenizer Tokenizer(string model) =>
        Loaded.GetOrAdd(model, m => new Lazy<HfTokenizer>(() => HfTokenizer.Load(Folder(m)))).Value;

    /// <summary>A tokenizer loaded from files written by <paramref name="writeFiles"/>, loaded once per name.</summary>
    public static HfTokenizer Variant(string name, Action<TempFolder> writeFiles) =>
        Loaded.GetOrAdd("variant:" + name, _ => new Lazy<HfTokenizer>(() =>
        {
            using var folder = new TempFolder();
            writeFiles(folder);
            return HfTokenizer.Load(folder.Path);
        })).Value;

    /// <summary>A fixture's tokenizer.json after <paramref name="edit"/>.</summary>
    public static string EditedTokenizerJson(string model, Action<JsonNode> edit)
    {
        var root = JsonNode.Parse(File.ReadAllText(Fixtures.Path("tokenizers", model, "tokenizer.json")))!;
        edit(root);
        return root.ToJsonString();
    }

    public static IReadOnlyList<ExpectedCase> Cases(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("tokenizers", model, "expected.json")));
        return doc.RootElement.GetProperty("cases").Deserialize<ExpectedCase[]>(SnakeCase)
            ?? throw new InvalidDataException($"{model}/expected.json has no cases");
    }

    /// <summary>Theory data: (model, case index) for every case of every fixture.</summary>
    public static TheoryData<string, int> AllCases()
    {
        var data = new TheoryData<string, int>();
        foreach (string model in Models)
            for (int i = 0; i < Cases(model).Count; i++)
                data.Add(model, i);
        return data;
    }
}

/// <summary>A temporary folder, deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("qservice-tok-test-").FullName;

    public string File(string name, string contents)
    {
        string path = System.IO.Path.Combine(Path, name);
        System.IO.File.WriteAllText(path, contents);
        return path;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
