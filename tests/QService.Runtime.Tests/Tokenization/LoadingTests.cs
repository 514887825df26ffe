using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>Where Load looks for files, what it tells when they are wrong, and the sanitized native copy.</summary>
public class LoadingTests
{
    [Fact]
    public void Folder_with_only_tokenizer_json_loads()
    {
        using var folder = new TempFolder();
        File.Copy(Fixtures.Path("tokenizers", "phi-3-mini", "tokenizer.json"), Path.Combine(folder.Path, "tokenizer.json"));

        using var tokenizer = HfTokenizer.Load(folder.Path);

        Assert.Equal([15043, 3186], tokenizer.Encode("Hello world", addSpecialTokens: true).Ids);
    }

    [Fact]
    public void Tokenizer_json_path_loads_with_the_config_beside_it()
    {
        using var tokenizer = HfTokenizer.Load(Fixtures.Path("tokenizers", "gpt2", "tokenizer.json"));

        Assert.Equal(50256, tokenizer.BosTokenId);
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world", addSpecialTokens: false).Ids);
    }

    [Fact]
    public void Missing_path_names_the_file()
    {
        string path = Path.Combine(Path.GetTempPath(), "qservice-no-such-tokenizer", "tokenizer.json");

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(path));

        Assert.Equal(path, error.FilePath);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Folder_without_tokenizer_json_says_so()
    {
        using var folder = new TempFolder();

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(folder.Path));

        Assert.Contains(folder.Path, error.Message);
        Assert.Contains("no tokenizer.json", error.Message);
    }

    [Fact]
    public void Garbled_tokenizer_json_names_file_and_problem()
    {
        using var folder = new TempFolder();
        string path = folder.File("tokenizer.json", """{"model": {"type": "BPE", "vocab": {"a": 0""");

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(folder.Path));

        Assert.Contains(path, error.Message);
        Assert.Contains("not valid JSON", error.Message);
    }

    [Fact]
    public void Garbled_tokenizer_config_json_names_that_file()
    {
        using var folder = new TempFolder();
        File.Copy(Fixtures.Path("tokenizers", "phi-3-mini", "tokenizer.json"), Path.Combine(folder.Path, "tokenizer.json"));
        string config = folder.File("tokenizer_config.json", "{ add_bos_token: yes }");

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(folder.Path));

        Assert.Equal(config, error.FilePath);
        Assert.Contains("not valid JSON", error.Message);
    }

    [Theory]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {"a": 0}}}""", "unsupported model type 'WordPiece'")]
    [InlineData("""{"version": "1.0"}""", "no \"model\"")]
    [InlineData("""[1, 2]""", "does not hold a JSON object")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}}""", "rejected by the HuggingFace tokenizers library")]
    public void Unusable_tokenizer_json_is_a_clear_error(string json, string problem)
    {
        using var folder = new TempFolder();
        string path = folder.File("tokenizer.json", json);

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(folder.Path));

        Assert.Contains(path, error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void Truncation_in_tokenizer_json_does_not_cut_input()
    {
        // gpt2/tokenizer.json has truncation max_length 50; " hello" is one token each time.
        string text = string.Concat(Enumerable.Repeat(" hello", 500));

        var encoded = TokenizerFixtures.Tokenizer("gpt2").Encode(text, addSpecialTokens: true);

        Assert.Equal(500, encoded.Ids.Length);
        Assert.All(encoded.Ids, id => Assert.Equal(23748, id));
        Assert.Equal(new TokenOffset(text.Length - 6, text.Length), encoded.Offsets[^1]);
    }

    [Fact]
    public void Disposed_tokenizer_refuses_work()
    {
        var tokenizer = HfTokenizer.Load(TokenizerFixtures.Folder("gpt2"));
        tokenizer.Dispose();

        Assert.Throws<ObjectDisposedException>(() => tokenizer.Encode("x", addSpecialTokens: false));
        Assert.Throws<ObjectDisposedException>(() => tokenizer.Decode([1]));
    }
}
