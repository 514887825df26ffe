namespace QService.Engine;

/// <summary>
/// Splits a scored response into steps at a text delimiter (e.g. "\n" or ". "), for step rewards: the
/// implicit process reward of PRIME, where a step's reward is the sum of its tokens' credits.
/// </summary>
public static class StepSplitter
{
    /// <summary>Longest delimiter accepted, in characters.</summary>
    public const int MaxDelimiterLength = 64;

    /// <summary>
    /// The index of the token that ends each step. A step ends at the token holding the last character of
    /// each delimiter occurrence (so a delimiter inside a token ends the step at that token); occurrences are
    /// found left to right without overlap; the last step ends at the last token.
    /// </summary>
    /// <param name="text">the response text</param>
    /// <param name="tokenEnds">per response token, its end offset in <paramref name="text"/> in code points (exclusive);
    /// -1 for a token with no text of its own (an appended end-of-sequence)</param>
    public static int[] StepEnds(string text, IReadOnlyList<int> tokenEnds, string delimiter)
    {
        if (string.IsNullOrEmpty(delimiter)) throw new ArgumentException("the delimiter is empty", nameof(delimiter));
        var ends = new List<int>();
        int token = 0;
        for (int at = text.IndexOf(delimiter, StringComparison.Ordinal); at >= 0; at = text.IndexOf(delimiter, at + delimiter.Length, StringComparison.Ordinal))
        {
            int lastChar = CodePointIndex(text, at + delimiter.Length - 1);
            // The first token whose text reaches past the delimiter's last character holds it.
            while (token < tokenEnds.Count && tokenEnds[token] <= lastChar) token++;
            if (token >= tokenEnds.Count) break;
            if (tokenEnds[token] < 0) break; // only textless tokens remain: the final step takes them
            if (ends.Count == 0 || ends[^1] != token) ends.Add(token);
        }
        int last = tokenEnds.Count - 1;
        // Textless tokens after the last delimiter (an appended EOS) join the last step rather than make one.
        bool onlyTextlessAfter = ends.Count > 0 && Enumerable.Range(ends[^1] + 1, last - ends[^1]).All(t => tokenEnds[t] < 0);
        if (onlyTextlessAfter) ends[^1] = last;
        else if (ends.Count == 0 || ends[^1] != last) ends.Add(last);
        return [.. ends];
    }

    /// <summary>The code-point index of the UTF-16 index <paramref name="utf16Index"/> (offsets elsewhere are in code points).</summary>
    static int CodePointIndex(string text, int utf16Index)
    {
        int surrogatePairs = 0;
        for (int i = 0; i < utf16Index; i++)
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { surrogatePairs++; i++; }
        return utf16Index - surrogatePairs;
    }
}
