using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>BOS/EOS resolution (tokenizer_config.json, then TemplateProcessing) and special-token handling.</summary>
public class SpecialTokenTests
{
    static readonly int[] HelloWorldPhi3 = [15043, 3186];

    /// <summary>A temp folder holding the phi-3 tokenizer.json and, if given, a tokenizer_config.json.</summary>
    static TempFolder Phi3Folder(string? config)
    {
        var folder = new TempFolder();
        File.Copy(Fixtures.Path("tokenizers", "phi-3-mini", "tokenizer.json"), Path.Combine(folder.Path, "tokenizer.json"));
        if (config is not null)
            folder.File("tokenizer_config.json", config);
        return folder;
    }

    [Fact]
    public void Gpt2_config_without_add_bos_token_adds_nothing()
    {
        var tokenizer = TokenizerFixtures.Tokenizer("gpt2");

        Assert.False(tokenizer.AddBosToken);
        Assert.Equal(50256, tokenizer.BosTokenId);
        Assert.Equal(50256, tokenizer.EosTokenId);
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world", addSpecialTokens: true).Ids);
    }

    [Fact]
    public void Phi3_without_config_has_no_bos_or_eos()
    {
        var tokenizer = TokenizerFixtures.Tokenizer("phi-3-mini");

        Assert.False(tokenizer.AddBosToken);
        Assert.Null(tokenizer.BosTokenId);
        Assert.Null(tokenizer.EosTokenId);
    }

    [Fact]
    public void Config_add_bos_token_prepends_bos_with_empty_offset()
    {
        using var folder = Phi3Folder("""{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>"}""");
        using var tokenizer = HfTokenizer.Load(folder.Path);

        var encoded = tokenizer.Encode("Hello world", addSpecialTokens: true);

        Assert.True(tokenizer.AddBosToken);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.Equal([1, .. HelloWorldPhi3], encoded.Ids);
        Assert.Equal(["<s>", "▁Hello", "▁world"], encoded.Tokens);
        Assert.Equal([new(0, 0), new(0, 5), new(5, 11)], encoded.Offsets);
        Assert.Equal(HelloWorldPhi3, tokenizer.Encode("Hello world", addSpecialTokens: false).Ids);
    }

    [Fact]
    public void Config_tokens_may_be_objects_with_content()
    {
        using var folder = Phi3Folder("""{"add_bos_token": true, "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": {"content": "</s>"}}""");
        using var tokenizer = HfTokenizer.Load(folder.Path);

        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
    }

    [Fact]
    public void Template_processing_with_leading_special_token_adds_bos_once()
    {
        using var folder = TemplateTokenizer(withConfig: null);
        using var tokenizer = HfTokenizer.Load(folder.Path);

        Assert.True(tokenizer.AddBosToken);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        // The native library would add the template's tokens itself; it must not, we add BOS exactly once.
        Assert.Equal([1, .. HelloWorldPhi3], tokenizer.Encode("Hello world", addSpecialTokens: true).Ids);
        Assert.Equal(HelloWorldPhi3, tokenizer.Encode("Hello world", addSpecialTokens: false).Ids);
    }

    [Fact]
    public void Config_add_bos_token_false_overrides_template()
    {
        using var folder = TemplateTokenizer(withConfig: """{"add_bos_token": false}""");
        using var tokenizer = HfTokenizer.Load(folder.Path);

        Assert.False(tokenizer.AddBosToken);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(HelloWorldPhi3, tokenizer.Encode("Hello world", addSpecialTokens: true).Ids);
    }

    [Fact]
    public void Unknown_bos_token_with_add_bos_token_is_a_clear_error()
    {
        using var folder = Phi3Folder("""{"add_bos_token": true, "bos_token": "<nope>"}""");

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(folder.Path));

        Assert.Contains("tokenizer_config.json", error.Message);
        Assert.Contains("<nope>", error.Message);
    }

    [Fact]
    public void Special_token_ids_include_config_bos_and_eos()
    {
        using var folder = Phi3Folder("""{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>"}""");
        using var tokenizer = HfTokenizer.Load(folder.Path);

        Assert.Contains(1, tokenizer.SpecialTokenIds);
        Assert.Contains(2, tokenizer.SpecialTokenIds);     // "</s>" is not special in tokenizer.json, but is the EOS
        Assert.Contains(32000, tokenizer.SpecialTokenIds);
        Assert.DoesNotContain(15043, tokenizer.SpecialTokenIds);
    }

    [Fact]
    public void Decode_keeps_special_tokens_unless_asked_to_skip_them()
    {
        var tokenizer = TokenizerFixtures.Tokenizer("phi-3-mini");
        int[] ids = [1, 15043, 3186, 2, 32000];

        // Expected strings are HuggingFace tokenizers' decode(ids, false) and decode(ids, true).
        Assert.Equal("<s> Hello world</s><|endoftext|>", tokenizer.Decode(ids));
        Assert.Equal("Hello world</s>", tokenizer.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("<|endoftext|>Hello world<|endoftext|>", TokenizerFixtures.Tokenizer("gpt2").Decode([50256, 15496, 995, 50256]));
        Assert.Equal("Hello world", TokenizerFixtures.Tokenizer("gpt2").Decode([50256, 15496, 995, 50256], skipSpecialTokens: true));
    }

    /// <summary>phi-3's tokenizer.json with a Llama-3-style post-processor: Sequence[ByteLevel, TemplateProcessing("&lt;s&gt; $A &lt;/s&gt;")].</summary>
    static TempFolder TemplateTokenizer(string? withConfig)
    {
        var folder = new TempFolder();
        var root = JsonNode.Parse(File.ReadAllText(Fixtures.Path("tokenizers", "phi-3-mini", "tokenizer.json")))!;
        root["post_processor"] = JsonNode.Parse("""
            {"type": "Sequence", "processors": [
              {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
              {"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "</s>", "type_id": 0}}],
               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}]}
            """);
        folder.File("tokenizer.json", root.ToJsonString());
        if (withConfig is not null)
            folder.File("tokenizer_config.json", withConfig);
        return folder;
    }
}
