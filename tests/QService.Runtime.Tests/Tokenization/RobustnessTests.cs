using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>Encode never throws and always gives in-range, in-order offsets, whatever the text.</summary>
public class RobustnessTests
{
    public static TheoryData<string, string> OddInputs()
    {
        string[] texts =
        [
            "a\ud800b", "\udc00", "x\ud83d", "\0\0", "\u200b\u200d\ufeff", "e\u0301\u0301", "👨‍👩‍👧‍👦",
            "<|endoftext|><|endoftext|>", "</s></s> <s>", "<unk> <0x0A> ▁▁ Ġ", "\r\n\r\n\t \u00a0\u3000",
            string.Concat(Enumerable.Repeat("ab 日本 😀\n", 300)),
        ];
        var data = new TheoryData<string, string>();
        foreach (string model in TokenizerFixtures.Models)
            foreach (string text in texts)
                data.Add(model, text);
        return data;
    }

    [Theory]
    [MemberData(nameof(OddInputs))]
    public void Offsets_are_in_range_and_in_order(string model, string text)
    {
        AssertInRangeAndInOrder(TokenizerFixtures.Tokenizer(model).Encode(text, addSpecialTokens: true), text);
    }

    static void AssertInRangeAndInOrder(TokenizedText encoded, string text)
    {
        int length = text.EnumerateRunes().Count();
        Assert.Equal(encoded.Ids.Length, encoded.Tokens.Length);
        Assert.Equal(encoded.Ids.Length, encoded.Offsets.Length);
        int previousStart = 0;
        foreach (var offset in encoded.Offsets)
        {
            Assert.InRange(offset.Start, previousStart, length);
            Assert.InRange(offset.End, offset.Start, length);
            previousStart = offset.Start;
        }
    }

    [Theory]
    [InlineData("a   b")]
    [InlineData("  \t x \u00a0 y  ")]
    [InlineData("\0  😀  <|endoftext|>  ")]
    public void Normalizer_we_do_not_recreate_still_gives_in_order_offsets(string text)
    {
        // A regex Replace is not re-created: offsets are best-effort, but still in range and in order.
        var tokenizer = TokenizerFixtures.Variant("phi3-regex-replace", folder => folder.File("tokenizer.json",
            TokenizerFixtures.EditedTokenizerJson("phi-3-mini", root => root["normalizer"] = JsonNode.Parse("""
                {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                 {"type": "Replace", "pattern": {"Regex": " +"}, "content": "▁"}]}
                """))));

        AssertInRangeAndInOrder(tokenizer.Encode(text, addSpecialTokens: false), text);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("phi-3-mini")]
    public void Lone_surrogates_encode_as_replacement_character(string model)
    {
        var tokenizer = TokenizerFixtures.Tokenizer(model);

        var encoded = tokenizer.Encode("a\ud800b", addSpecialTokens: false);

        Assert.Equal(tokenizer.Encode("a\ufffdb", addSpecialTokens: false).Ids, encoded.Ids);
        Assert.Equal(3, encoded.Offsets[^1].End);
    }

    [Fact]
    public void Offsets_count_code_points_not_utf16_units()
    {
        // "😀" is two UTF-16 units but one code point; both of its byte-level tokens span (0, 1).
        var encoded = TokenizerFixtures.Tokenizer("gpt2").Encode("😀a", addSpecialTokens: false);

        Assert.Equal([new(0, 1), new(0, 1), new(1, 2)], encoded.Offsets);
    }
}
