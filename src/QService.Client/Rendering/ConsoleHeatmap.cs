using QService.Protos.V1;

namespace QService.Client.Rendering;

/// <summary>The response in a terminal: each token coloured by its credit (green positive, red negative) and Q as a sparkline.</summary>
public static class ConsoleHeatmap
{
    const string Reset = "\u001b[0m";
    static readonly char[] Bars = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

    /// <summary>Token texts on coloured backgrounds; plain brackets instead of colours when <paramref name="color"/> is false.</summary>
    public static string Tokens(ScoredItem item, double scale, bool color) =>
        string.Concat(Enumerable.Range(0, item.TokenIds.Count).Select(t => Cell(item, t, scale, color).Text));

    /// <summary>
    /// The same response under several policies, one line each, every token padded to its widest cell across the lines so
    /// that token t sits at the same column in every line (the texts are the same; without colours the credits differ in width).
    /// </summary>
    public static string[] Aligned(IReadOnlyList<ScoredItem> items, double scale, bool color)
    {
        var cells = items.Select(i => Enumerable.Range(0, i.TokenIds.Count).Select(t => Cell(i, t, scale, color)).ToArray()).ToArray();
        int tokens = cells.Max(c => c.Length);
        int[] widths = [.. Enumerable.Range(0, tokens).Select(t => cells.Max(c => t < c.Length ? c[t].Width : 0))];
        return [.. cells.Select(line => string.Concat(line.Select((c, t) => c.Text + new string(' ', widths[t] - c.Width))))];
    }

    /// <summary>Token t as printed, and how many columns it takes (the colour codes take none).</summary>
    static (string Text, int Width) Cell(ScoredItem item, int t, double scale, bool color)
    {
        string text = (t < item.TokenTexts.Count ? item.TokenTexts[t] : $"[{item.TokenIds[t]}]").Replace("\n", "\\n");
        double c = item.Credits[t];
        string plain = color ? text : $"[{text}|{Signed.Format(c, 3)}]";
        return (color ? $"{Background(c, scale)}{text}{Reset}" : plain, plain.Length);
    }

    /// <summary>Q over the tokens, one bar per token, scaled between its own min and max.</summary>
    public static string Sparkline(IReadOnlyList<float> q)
    {
        if (q.Count == 0) return "";
        double min = q.Min(), max = q.Max(), range = Math.Max(max - min, 1e-9);
        return string.Concat(q.Select(v => Bars[(int)Math.Round((v - min) / range * (Bars.Length - 1))]));
    }

    static string Background(double credit, double scale)
    {
        // 256-colour greens and reds in three strengths; credits under 5 % of the largest stay uncoloured.
        double ratio = Math.Min(1, Math.Abs(credit) / Math.Max(scale, 1e-9));
        int level = ratio < 0.05 ? 0 : (int)Math.Ceiling(ratio * 3);
        int[] greens = [255, 194, 120, 34], reds = [255, 224, 210, 160];
        int code = credit >= 0 ? greens[level] : reds[level];
        return level == 0 ? "" : $"\u001b[48;5;{code}m\u001b[30m";
    }
}
