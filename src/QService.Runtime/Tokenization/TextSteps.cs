using System.Globalization;
using System.Text;

namespace QService.Runtime.Tokenization;

/// <summary>One text-changing step of a normalizer or pre-tokenizer, applied to one input segment.</summary>
internal interface ITextStep
{
    void Apply(List<NormalizedChar> chars, bool atInputStart);
}

/// <summary>
/// Prepend normalizer, Metaspace's prefix marker and ByteLevel's add_prefix_space: the new characters take
/// the span of the segment's first character. Empty segments stay empty, as in HuggingFace.
/// </summary>
internal sealed class PrependStep(string prefix, bool onlyAtInputStart, bool unlessAlreadyPrefixed) : ITextStep
{
    readonly Rune[] _prefix = [.. prefix.EnumerateRunes()];

    public void Apply(List<NormalizedChar> chars, bool atInputStart)
    {
        if (chars.Count == 0 || _prefix.Length == 0 || (onlyAtInputStart && !atInputStart))
            return;
        if (unlessAlreadyPrefixed && chars[0].Rune == _prefix[0])
            return;
        var first = chars[0];
        chars.InsertRange(0, _prefix.Select(r => first with { Rune = r }));
    }
}

/// <summary>Replace with a literal pattern: each replacement character spans the characters it replaced.</summary>
internal sealed class ReplaceStep(string pattern, string content) : ITextStep
{
    readonly Rune[] _pattern = [.. pattern.EnumerateRunes()];
    readonly Rune[] _content = [.. content.EnumerateRunes()];

    public void Apply(List<NormalizedChar> chars, bool atInputStart)
    {
        if (_pattern.Length == 0)
            return;
        var result = new List<NormalizedChar>(chars.Count);
        for (int i = 0; i < chars.Count;)
        {
            if (!MatchesAt(chars, i))
            {
                result.Add(chars[i++]);
                continue;
            }
            int start = chars[i].Start, end = chars[i + _pattern.Length - 1].End;
            result.AddRange(_content.Select(r => new NormalizedChar(r, start, end)));
            i += _pattern.Length;
        }
        chars.Clear();
        chars.AddRange(result);
    }

    bool MatchesAt(List<NormalizedChar> chars, int index)
    {
        if (index + _pattern.Length > chars.Count)
            return false;
        for (int k = 0; k < _pattern.Length; k++)
            if (chars[index + k].Rune != _pattern[k])
                return false;
        return true;
    }
}

/// <summary>Lowercase normalizer: each character's lowercase keeps its span (İ lowercases to two characters).</summary>
internal sealed class LowercaseStep : ITextStep
{
    public void Apply(List<NormalizedChar> chars, bool atInputStart)
    {
        var result = new List<NormalizedChar>(chars.Count);
        foreach (var c in chars)
        {
            if (c.Rune.Value == 0x130) // the one unconditional multi-character lowercase mapping
                result.AddRange([c with { Rune = new Rune('i') }, c with { Rune = new Rune(0x307) }]);
            else
                result.Add(c with { Rune = Rune.ToLowerInvariant(c.Rune) });
        }
        chars.Clear();
        chars.AddRange(result);
    }
}

/// <summary>
/// NFC/NFD/NFKC/NFKD (e.g. Qwen2's NFC), aligned as HuggingFace does: a character's decomposition keeps its
/// span, and a composed character keeps the span of the character it was composed onto. Works on groups of a
/// character and the combining marks after it; a group whose result cannot be aligned piece by piece spans
/// the whole group.
/// </summary>
internal sealed class UnicodeNormalizeStep(NormalizationForm form) : ITextStep
{
    readonly NormalizationForm _decomposition = form is NormalizationForm.FormKC or NormalizationForm.FormKD
        ? NormalizationForm.FormKD
        : NormalizationForm.FormD;

    public void Apply(List<NormalizedChar> chars, bool atInputStart)
    {
        if (IsNormalized(string.Concat(chars.Select(c => c.Rune.ToString()))))
            return; // the usual case: nothing changes, every character keeps its span
        var result = new List<NormalizedChar>(chars.Count);
        for (int i = 0; i < chars.Count;)
        {
            int end = i + 1;
            while (end < chars.Count && IsCombining(chars[end].Rune))
                end++;
            AddGroup(chars.GetRange(i, end - i), result);
            i = end;
        }
        chars.Clear();
        chars.AddRange(result);
    }

    void AddGroup(List<NormalizedChar> group, List<NormalizedChar> result)
    {
        var pieces = group.SelectMany(c => Normalize(c.Rune.ToString(), _decomposition).Select(r => c with { Rune = r })).ToList();
        var output = Normalize(string.Concat(group.Select(c => c.Rune.ToString())), form);
        int marks = output.Length - 1; // after composition, the marks not merged are the group's last pieces
        if (output.SequenceEqual(pieces.Select(p => p.Rune)))
        {
            result.AddRange(pieces);
        }
        else if (output.Length > 0 && marks < pieces.Count && output.Skip(1).SequenceEqual(pieces.TakeLast(marks).Select(p => p.Rune)))
        {
            result.Add(pieces[0] with { Rune = output[0] });
            result.AddRange(pieces.TakeLast(marks));
        }
        else
        {
            result.AddRange(output.Select(r => new NormalizedChar(r, group[0].Start, group[^1].End)));
        }
    }

    bool IsNormalized(string text)
    {
        try
        {
            return text.IsNormalized(form);
        }
        catch (Exception e) when (e is PlatformNotSupportedException or ArgumentException)
        {
            return true;
        }
    }

    /// <summary>Normalizes, or leaves the text as it is where the platform cannot (invariant globalization).</summary>
    static Rune[] Normalize(string text, NormalizationForm normalization)
    {
        try
        {
            text = text.Normalize(normalization);
        }
        catch (Exception e) when (e is PlatformNotSupportedException or ArgumentException)
        {
        }
        return [.. text.EnumerateRunes()];
    }

    /// <summary>Combining marks, and Hangul medial vowel and final consonant jamo, which compose onto what precedes them.</summary>
    static bool IsCombining(Rune rune) => rune.Value is >= 0x1160 and <= 0x11FF || Rune.GetUnicodeCategory(rune) is
        UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark;
}

/// <summary>A segment's normalized text as UTF-8 bytes; byte i came from input code points [Starts[i], Ends[i]).</summary>
internal sealed class NormalizedSegment
{
    NormalizedSegment(byte[] bytes, int[] starts, int[] ends, int inputEnd)
    {
        Bytes = bytes;
        Starts = starts;
        Ends = ends;
        InputEnd = inputEnd;
    }

    public byte[] Bytes { get; }
    public int[] Starts { get; }
    public int[] Ends { get; }

    /// <summary>Input code point index where the segment ends (the span given to empty tokens at its end).</summary>
    public int InputEnd { get; }

    public static NormalizedSegment From(List<NormalizedChar> chars, int inputEnd)
    {
        var bytes = new List<byte>(chars.Count);
        var starts = new List<int>(chars.Count);
        var ends = new List<int>(chars.Count);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var c in chars)
        {
            int n = c.Rune.EncodeToUtf8(utf8);
            bytes.AddRange(utf8[..n]);
            for (int k = 0; k < n; k++)
            {
                starts.Add(c.Start);
                ends.Add(c.End);
            }
        }
        return new NormalizedSegment([.. bytes], [.. starts], [.. ends], inputEnd);
    }

    /// <summary>The input span covered by bytes [from, to); an empty span at <paramref name="from"/> when from == to.</summary>
    public TokenOffset Span(int from, int to)
    {
        if (from >= Bytes.Length)
            return new TokenOffset(InputEnd, InputEnd);
        return to > from ? new TokenOffset(Starts[from], Ends[to - 1]) : new TokenOffset(Starts[from], Starts[from]);
    }
}
