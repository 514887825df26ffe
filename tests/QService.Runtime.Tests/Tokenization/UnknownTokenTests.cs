using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>
/// Tokenizers whose model emits an unknown token (no byte fallback): a small T5-style Unigram model, and
/// phi-3 with byte_fallback off. "&lt;unk&gt;" is also an added token there, so a literal "&lt;unk&gt;" in the text
/// and text the model cannot spell give the same id. Expected values are HuggingFace tokenizers 0.23.2's.
/// </summary>
public class UnknownTokenTests
{
    const string UnigramJson = """
        {"version": "1.0", "truncation": null, "padding": null,
         "added_tokens": [
           {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
           {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
         "normalizer": null,
         "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
         "post_processor": {"type": "TemplateProcessing",
           "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}], "pair": [],
           "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
         "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
         "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false, "vocab": [
           ["<unk>", 0.0], ["</s>", 0.0], ["▁", -2.0], ["▁hello", -3.0], ["▁world", -3.0], ["h", -5.0], ["e", -5.0],
           ["l", -5.0], ["o", -5.0], ["w", -5.0], ["r", -5.0], ["d", -5.0], ["▁he", -4.0], ["llo", -4.0]]}}
        """;

    [Theory]
    [InlineData("hello world", "3,4|0-5,5-11", "▁hello ▁world")]
    [InlineData(" hello  world", "3,2,4|0-6,6-7,7-13", "▁hello ▁ ▁world")]
    [InlineData("hellox world", "3,0,4|0-5,5-6,6-12", "▁hello x ▁world")]
    [InlineData("héllo wörld", "2,5,0,13,2,9,0,10,7,11|0-1,0-1,1-2,2-5,5-6,6-7,7-8,8-9,9-10,10-11", "▁ h é llo ▁ w ö r l d")]
    [InlineData("hello</s>world", "3,1,4|0-5,5-9,9-14", "▁hello </s> ▁world")]
    [InlineData("😀<unk>x", "2,0,0,2,0|0-1,0-1,1-6,6-7,6-7", "▁ 😀 <unk> ▁ x")]
    [InlineData("<unk>😀x", "0,2,0|0-5,5-6,5-7", "<unk> ▁ 😀x")]
    [InlineData("a😀😀b<unk>", "2,0,0|0-1,0-4,4-9", "▁ a😀😀b <unk>")]
    public void Unigram_model(string text, string expected, string tokens)
    {
        var encoded = TokenizerVariantTests.AssertEncodes(Unigram(), text, expected);

        // Unigram reports an unknown token as the text it covers.
        Assert.Equal(tokens.Split(' '), encoded.Tokens);
    }

    [Fact]
    public void Unigram_template_gives_eos_but_no_bos()
    {
        var tokenizer = Unigram();

        Assert.False(tokenizer.AddBosToken);
        Assert.Null(tokenizer.BosTokenId);
        Assert.Equal(1, tokenizer.EosTokenId);
        Assert.Equal([3, 4], tokenizer.Encode("hello world", addSpecialTokens: true).Ids);
    }

    [Theory]
    [InlineData("hellox world", "22172,29916,3186|0-5,5-6,6-12")]
    [InlineData("😀<unk>x", "29871,0,0,921|0-1,0-1,1-6,6-7")]
    [InlineData("<unk>😀x", "0,29871,0,29916|0-5,5-6,5-6,6-7")]
    [InlineData("a😀😀b<unk>", "263,0,29890,0|0-1,1-3,3-4,4-9")]
    public void Bpe_without_byte_fallback(string text, string expected)
    {
        var tokenizer = TokenizerFixtures.Variant("phi3-no-byte-fallback", folder => folder.File("tokenizer.json",
            TokenizerFixtures.EditedTokenizerJson("phi-3-mini", root => root["model"]!["byte_fallback"] = false)));

        TokenizerVariantTests.AssertEncodes(tokenizer, text, expected);
    }

    static HfTokenizer Unigram() =>
        TokenizerFixtures.Variant("unigram", folder => folder.File("tokenizer.json", UnigramJson));
}
