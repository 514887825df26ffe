namespace QService.Runtime.Tokenization;

/// <summary>
/// GPT-2's reversible byte-to-character table (<c>bytes_to_unicode</c>): byte-level BPE vocabularies spell
/// every byte as a printable character, e.g. space as 'Ġ' and '\n' as 'Ċ'.
/// </summary>
public static class ByteLevelAlphabet
{
    static readonly Dictionary<char, byte> CharToByte = Build();
    static readonly char[] ByteToChar = CharToByte.OrderBy(p => p.Value).Select(p => p.Key).ToArray();

    /// <summary>The vocabulary character that spells a byte (e.g. 'Ġ' for a space).</summary>
    public static char CharOf(byte value) => ByteToChar[value];

    /// <summary>The byte a vocabulary character stands for; false for characters outside the alphabet.</summary>
    public static bool TryGetByte(char c, out byte value) => CharToByte.TryGetValue(c, out value);

    static Dictionary<char, byte> Build()
    {
        var map = new Dictionary<char, byte>(256);
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            // Printable Latin-1 bytes stand for themselves; the rest are shifted past 255 in byte order.
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[(char)(printable ? b : next++)] = (byte)b;
        }
        return map;
    }
}
