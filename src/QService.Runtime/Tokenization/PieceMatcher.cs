namespace QService.Runtime.Tokenization;

/// <summary>The bytes a model token stands for, and whether it is the unknown token (which spells nothing).</summary>
internal readonly record struct Piece(byte[] Bytes, bool IsUnknown);

/// <summary>
/// Matches token pieces against normalized text bytes, in order. Searches are bounded so that text that does
/// not match at all (a normalizer we do not re-create) stays linear.
/// </summary>
internal static class PieceMatcher
{
    const int SearchWindow = 1024;
    const int AnchorBytes = 4; // a single short piece would be found by chance too easily

    /// <summary>For each piece, the byte range [From, To) of the text it covers and whether it is spelled there.</summary>
    public static IEnumerable<(int From, int To, bool Spelled)> Walk(byte[] text, Piece[] pieces)
    {
        int pos = 0;
        for (int k = 0; k < pieces.Length; k++)
        {
            var match = Match(text, pos, pieces, k);
            pos = match.To;
            yield return match;
        }
    }

    static (int From, int To, bool Spelled) Match(byte[] text, int pos, Piece[] pieces, int k)
    {
        ReadOnlySpan<byte> rest = text.AsSpan(pos), piece = pieces[k].Bytes;
        if (!pieces[k].IsUnknown && rest.StartsWith(piece))
            return (pos, pos + piece.Length, true);
        // Text a pre-tokenizer dropped (e.g. whitespace) lies before the piece.
        int skip = pieces[k].IsUnknown ? -1 : Find(rest, piece);
        if (skip > 0 && !rest[..skip].ContainsAnyExcept(" \t\n\r\f\v"u8))
            return (pos + skip, pos + skip + piece.Length, true);
        // The piece is not spelled like the text (unknown token, normalizer not re-created): it covers the
        // text up to where the following pieces match, else as many bytes as it has.
        if (k + 1 == pieces.Length)
            return (pos, text.Length, false);
        int next = rest.IsEmpty ? -1 : Find(rest[1..], Anchor(pieces, k + 1));
        int length = next >= 0 ? next + 1 : Math.Max(piece.Length, 1);
        return (pos, pos + Math.Min(length, rest.Length), false);
    }

    /// <summary>The bytes of the pieces from <paramref name="first"/> on, up to a few bytes or an unknown token.</summary>
    static byte[] Anchor(Piece[] pieces, int first)
    {
        var anchor = new List<byte>();
        for (int j = first; j < pieces.Length && !pieces[j].IsUnknown && anchor.Count < AnchorBytes; j++)
            anchor.AddRange(pieces[j].Bytes);
        return [.. anchor];
    }

    static int Find(ReadOnlySpan<byte> text, ReadOnlySpan<byte> bytes) =>
        bytes.IsEmpty ? -1 : text[..Math.Min(text.Length, SearchWindow)].IndexOf(bytes);
}
