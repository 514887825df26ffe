using System.Text;

namespace QService.Runtime.Tokenization;

/// <summary>
/// Text to encode, indexed by Unicode code point. Lone surrogates are replaced by U+FFFD first: the native
/// library rejects them, and they have no UTF-8 form.
/// </summary>
internal sealed class InputText
{
    readonly int[] _utf16Start;   // UTF-16 index of each code point, plus Text.Length at the end
    readonly int[] _codePointAt;  // code point index of each UTF-16 index, plus Length at the end

    public InputText(string text)
    {
        Text = ReplaceLoneSurrogates(text);
        var starts = new List<int>(Text.Length + 1);
        _codePointAt = new int[Text.Length + 1];
        for (int i = 0; i < Text.Length; i++)
        {
            if (!char.IsLowSurrogate(Text[i]) || i == 0 || !char.IsHighSurrogate(Text[i - 1]))
                starts.Add(i);
            _codePointAt[i] = starts.Count - 1;
        }
        starts.Add(Text.Length);
        _utf16Start = [.. starts];
        _codePointAt[Text.Length] = Length;
    }

    public string Text { get; }

    /// <summary>Number of code points.</summary>
    public int Length => _utf16Start.Length - 1;

    public Rune RuneAt(int codePoint) => Rune.GetRuneAt(Text, _utf16Start[codePoint]);

    public int Utf16Index(int codePoint) => _utf16Start[codePoint];

    public int CodePointIndex(int utf16Index) => _codePointAt[utf16Index];

    static string ReplaceLoneSurrogates(string text)
    {
        StringBuilder? fixedText = null;
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsSurrogatePair(text, i))
            {
                fixedText?.Append(text, i, 2);
                i++;
                continue;
            }
            bool lone = char.IsSurrogate(text[i]);
            if (lone && fixedText is null)
                fixedText = new StringBuilder(text.Length).Append(text, 0, i);
            fixedText?.Append(lone ? '\uFFFD' : text[i]);
        }
        return fixedText?.ToString() ?? text;
    }
}
