using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>
/// Pipelines of other model families, made by editing the fixture files: Metaspace pre-tokenizers (newer
/// Llama/Mistral files), added tokens with lstrip/rstrip, Llama-3-style Split + ByteLevel, Unicode
/// normalizers (Qwen2's NFC), lowercasing and offset trimming by a ByteLevel post-processor. Expected ids and
/// offsets ("ids|start-end,...") were produced by HuggingFace tokenizers 0.23.2 (npm) on the same edited files.
/// </summary>
public class TokenizerVariantTests
{
    const string MetaspaceFirst = """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""";
    const string MetaspaceAlways = """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""";
    const string Llama3Split = """
        {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "behavior": "Isolated", "invert": false, "pattern": {"Regex":
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
          {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}
        """;

    [Theory]
    [InlineData(" Hello world", "15043,3186|0-6,6-12")]
    [InlineData("Hello world", "15043,3186|0-5,5-11")]
    [InlineData("  leading\n b", "29871,8236,13,289|0-1,1-9,9-10,10-12")]
    [InlineData("😀 x", "29871,243,162,155,131,921|0-1,0-1,0-1,0-1,0-1,1-3")]
    [InlineData("<|endoftext|> after", "32000,1156|0-13,13-19")]
    [InlineData("a<s>b", "263,1,29890|0-1,1-4,4-5")] // "first": only the segment at the input start gets ▁
    public void Metaspace_prepend_first(string text, string expected)
    {
        AssertEncodes(Phi3Variant("metaspace-first", root => WithoutNormalizer(root, MetaspaceFirst)), text, expected);
    }

    [Theory]
    [InlineData(" Hello world", "15043,3186|0-6,6-12")]
    [InlineData("  leading\n b", "29871,8236,13,289|0-1,1-9,9-10,10-12")]
    [InlineData("a<s>b", "263,1,289|0-1,1-4,4-5")] // "always": every segment gets ▁
    public void Metaspace_prepend_always(string text, string expected)
    {
        AssertEncodes(Phi3Variant("metaspace-always", root => WithoutNormalizer(root, MetaspaceAlways)), text, expected);
    }

    [Theory]
    [InlineData("x  <|end|>  y", "921,32007,343|0-1,1-12,12-13", "  <|end|>  ")]
    [InlineData("<|end|>\n\nz", "32007,503|0-9,9-10", "<|end|>\n\n")]
    [InlineData("a <|endoftext|>", "263,32000|0-1,1-15", " <|endoftext|>")]
    public void Added_tokens_absorb_whitespace_they_strip(string text, string expected, string addedToken)
    {
        var tokenizer = Phi3Variant("strip", root =>
        {
            foreach (var token in root["added_tokens"]!.AsArray())
                if ((string?)token!["content"] is "<|end|>" or "<|endoftext|>")
                {
                    token["lstrip"] = true;
                    token["rstrip"] = true;
                }
        });

        var encoded = AssertEncodes(tokenizer, text, expected);

        Assert.Contains(addedToken, encoded.Tokens);
    }

    [Theory]
    [InlineData("Hello  world\n\n", "15496,220,995,628|0-5,5-6,6-12,12-14")]
    [InlineData("naïve 日本語 😀", "2616,38776,10545,245,98,17312,105,45739,252,30325,222|0-2,2-5,5-7,6-7,6-7,7-8,7-8,8-9,8-9,9-11,10-11")]
    [InlineData("<|endoftext|>x", "50256,87|0-13,13-14")]
    [InlineData("  12345 67", "220,220,10163,2231,220,3134|0-1,1-2,2-5,5-7,7-8,8-10")]
    public void Split_regex_with_byte_level(string text, string expected)
    {
        var tokenizer = TokenizerFixtures.Variant("gpt2-llama3-split", folder => folder.File("tokenizer.json",
            TokenizerFixtures.EditedTokenizerJson("gpt2", root => root["pre_tokenizer"] = JsonNode.Parse(Llama3Split))));

        AssertEncodes(tokenizer, text, expected);
    }

    [Theory]
    [InlineData("cafe\u0301 ok", "66,1878,2634,12876|0-1,1-3,3-4,5-8")] // the composed é spans only the e
    [InlineData("\u1100\u1161\u11a8!", "166,108,223,0|0-1,0-1,0-1,3-4")]
    [InlineData("ﬁne ①", "171,105,223,710,220,158,239,254|0-1,0-1,0-1,1-3,3-4,4-5,4-5,4-5")]
    [InlineData("a\u0301\u0302b", "6557,136,224,65|0-1,2-3,2-3,3-4")]
    public void Nfc_normalizer_with_split_and_byte_level(string text, string expected)
    {
        var tokenizer = TokenizerFixtures.Variant("gpt2-qwen2-nfc", folder => folder.File("tokenizer.json",
            TokenizerFixtures.EditedTokenizerJson("gpt2", root =>
            {
                root["normalizer"] = JsonNode.Parse("""{"type": "NFC"}""");
                root["pre_tokenizer"] = JsonNode.Parse(Llama3Split);
            })));

        AssertEncodes(tokenizer, text, expected);
    }

    [Theory]
    [InlineData("cafe\u0301 ok", "274,28059,3431|0-1,1-4,5-8")]
    [InlineData("ﬁne ①", "2691,29871,29896|0-3,3-4,4-5")]
    [InlineData("a\u0301\u0302b", "3976,31500,29890|0-1,2-3,3-4")]
    public void Nfkc_normalizer_with_metaspace(string text, string expected)
    {
        var tokenizer = Phi3Variant("nfkc-metaspace", root =>
        {
            root["normalizer"] = JsonNode.Parse("""{"type": "NFKC"}""");
            root["pre_tokenizer"] = JsonNode.Parse(MetaspaceFirst);
        });

        AssertEncodes(tokenizer, text, expected);
    }

    [Theory]
    [InlineData("HELLO World", "31373,995|0-5,5-11")]
    [InlineData("İstanbul ÀÉ", "72,136,229,24179,28141,2634|0-1,0-1,0-1,1-8,8-10,10-11")] // İ lowercases to i + U+0307
    [InlineData("ΣΟΦΊΑ", "38392,26517,139,228,138,107,17394|0-1,1-2,2-3,2-3,3-4,3-4,4-5")]
    public void Lowercase_normalizer(string text, string expected)
    {
        var tokenizer = TokenizerFixtures.Variant("gpt2-lowercase", folder => folder.File("tokenizer.json",
            TokenizerFixtures.EditedTokenizerJson("gpt2", root => root["normalizer"] = JsonNode.Parse("""{"type": "Lowercase"}"""))));

        AssertEncodes(tokenizer, text, expected);
    }

    [Theory]
    [InlineData("Hello  world ", "15496,220,995,220|0-5,6-6,7-12,13-13")]
    [InlineData(" a", "257|0-2")] // the one space add_prefix_space would have added stays
    [InlineData("  x  y", "220,2124,220,331|0-0,2-3,4-4,5-6")]
    public void Byte_level_post_processor_trims_offsets(string text, string expected)
    {
        var tokenizer = TokenizerFixtures.Variant("gpt2-trim-offsets", folder => folder.File("tokenizer.json",
            TokenizerFixtures.EditedTokenizerJson("gpt2", root => root["post_processor"] = JsonNode.Parse(
                """{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"""))));

        AssertEncodes(tokenizer, text, expected);
    }

    /// <summary>Asserts ids and offsets written as "id,id,...|start-end,start-end,...".</summary>
    internal static TokenizedText AssertEncodes(HfTokenizer tokenizer, string text, string expected)
    {
        var encoded = tokenizer.Encode(text, addSpecialTokens: false);
        string[] parts = expected.Split('|');
        Assert.Equal(parts[0].Split(',').Select(int.Parse), encoded.Ids);
        Assert.Equal(parts[1].Split(',').Select(ParseOffset), encoded.Offsets);
        return encoded;
    }

    static TokenOffset ParseOffset(string span)
    {
        string[] ends = span.Split('-');
        return new TokenOffset(int.Parse(ends[0]), int.Parse(ends[1]));
    }

    static void WithoutNormalizer(JsonNode root, string preTokenizer)
    {
        root["normalizer"] = null;
        root["pre_tokenizer"] = JsonNode.Parse(preTokenizer);
    }

    static HfTokenizer Phi3Variant(string name, Action<JsonNode> edit) =>
        TokenizerFixtures.Variant("phi3-" + name, folder =>
            folder.File("tokenizer.json", TokenizerFixtures.EditedTokenizerJson("phi-3-mini", edit)));
}
