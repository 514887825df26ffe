using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>Vocabulary look-ups: sizes, token strings and their readable surface forms.</summary>
public class VocabularyTests
{
    [Theory]
    [InlineData("gpt2", 50257)]
    [InlineData("phi-3-mini", 32011)] // 32000 model tokens + added tokens up to id 32010
    public void Vocab_size_is_max_id_plus_one(string model, int size)
    {
        Assert.Equal(size, TokenizerFixtures.Tokenizer(model).VocabSize);
    }

    [Theory]
    [InlineData("gpt2", 995, "Ġworld", " world")]
    [InlineData("gpt2", 198, "Ċ", "\n")]
    [InlineData("gpt2", 33768, "æĹ", "\\xE6\\x97")] // first two bytes of 日: not a whole character
    [InlineData("gpt2", 50256, "<|endoftext|>", "<|endoftext|>")]
    [InlineData("phi-3-mini", 15043, "▁Hello", " Hello")]
    [InlineData("phi-3-mini", 13, "<0x0A>", "\n")]
    [InlineData("phi-3-mini", 243, "<0xF0>", "\\xF0")]
    [InlineData("phi-3-mini", 30325, "日", "日")]
    [InlineData("phi-3-mini", 32007, "<|end|>", "<|end|>")]
    public void Token_text_and_surface(string model, int id, string text, string surface)
    {
        var tokenizer = TokenizerFixtures.Tokenizer(model);

        Assert.Equal(text, tokenizer.TokenText(id));
        Assert.Equal(surface, tokenizer.TokenSurface(id));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(50257)]
    public void Ids_outside_the_vocabulary_are_rejected(int id)
    {
        var tokenizer = TokenizerFixtures.Tokenizer("gpt2");

        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenText(id));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenSurface(id));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([15496, id]));
    }

    [Fact]
    public void Decoding_nothing_gives_empty_text()
    {
        Assert.Equal("", TokenizerFixtures.Tokenizer("phi-3-mini").Decode([]));
    }
}
