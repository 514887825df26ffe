namespace QService.Runtime.Tokenization;

/// <summary>The result of <see cref="HfTokenizer.Encode"/>: one entry per token in each array.</summary>
/// <param name="Ids">Token ids, exactly as HuggingFace tokenizers produces them.</param>
/// <param name="Tokens">Token strings as HuggingFace reports them: the vocabulary string for model tokens,
/// the matched input text (including whitespace absorbed by lstrip/rstrip) for added tokens.</param>
/// <param name="Offsets">Span of each token in the input, in Unicode code points.</param>
public sealed record TokenizedText(int[] Ids, string[] Tokens, TokenOffset[] Offsets)
{
    public int Count => Ids.Length;
}

/// <summary>A half-open span [Start, End) of the input, counted in Unicode code points (not UTF-16 units).</summary>
public readonly record struct TokenOffset(int Start, int End)
{
    public int Length => End - Start;
}
