using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.Tokenization;

/// <summary>Every case of the HuggingFace reference fixtures: ids, token strings, code-point offsets and decoding.</summary>
public class FixtureParityTests
{
    [Theory]
    [MemberData(nameof(TokenizerFixtures.AllCases), MemberType = typeof(TokenizerFixtures))]
    public void Encode_matches_huggingface(string model, int index)
    {
        var expected = TokenizerFixtures.Cases(model)[index];
        var actual = TokenizerFixtures.Tokenizer(model).Encode(expected.Text, addSpecialTokens: false);

        Assert.Equal(expected.Ids, actual.Ids);
        Assert.Equal(expected.Tokens, actual.Tokens);
        Assert.Equal(expected.Offsets.Select(o => new TokenOffset(o[0], o[1])), actual.Offsets);
    }

    [Theory]
    [MemberData(nameof(TokenizerFixtures.AllCases), MemberType = typeof(TokenizerFixtures))]
    public void EncodeIds_gives_the_same_ids_without_offsets(string model, int index)
    {
        var expected = TokenizerFixtures.Cases(model)[index];
        var tokenizer = TokenizerFixtures.Tokenizer(model);
        Assert.Equal(expected.Ids, tokenizer.EncodeIds(expected.Text, addSpecialTokens: false));
        Assert.Equal(expected.IdsWithSpecialTokens, tokenizer.EncodeIds(expected.Text, addSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(TokenizerFixtures.AllCases), MemberType = typeof(TokenizerFixtures))]
    public void Encode_with_special_tokens_matches_huggingface(string model, int index)
    {
        var expected = TokenizerFixtures.Cases(model)[index];

        var actual = TokenizerFixtures.Tokenizer(model).Encode(expected.Text, addSpecialTokens: true);

        Assert.Equal(expected.IdsWithSpecialTokens, actual.Ids);
    }

    [Theory]
    [MemberData(nameof(TokenizerFixtures.AllCases), MemberType = typeof(TokenizerFixtures))]
    public void Decode_matches_huggingface(string model, int index)
    {
        var expected = TokenizerFixtures.Cases(model)[index];

        Assert.Equal(expected.Decoded, TokenizerFixtures.Tokenizer(model).Decode(expected.Ids));
    }

    [Theory]
    [InlineData("gpt2", 30)]
    [InlineData("phi-3-mini", 30)]
    public void Fixture_has_its_cases(string model, int atLeast)
    {
        Assert.True(TokenizerFixtures.Cases(model).Count >= atLeast, $"{model}/expected.json has too few cases");
    }
}
