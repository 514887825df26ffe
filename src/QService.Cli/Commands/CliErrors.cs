using QService.Runtime.Loading;
using QService.Runtime.Tokenization;

namespace QService.Cli.Commands;

static class CliErrors
{
    /// <summary>Runs a command body; expected failures print one line to stderr and exit 1 instead of a stack trace.</summary>
    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is CheckpointException or TokenizerLoadException or ArgumentException or InvalidOperationException
            or FileNotFoundException or DirectoryNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    public static int[] ParseIds(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, out int v) ? v : throw new ArgumentException($"--ids: '{s}' is not an integer token id"))
            .ToArray();
}

static class Display
{
    static readonly System.Text.Json.JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A token or text span in quotes with escapes, so spaces and newlines are visible; non-ASCII stays readable.</summary>
    public static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s, Relaxed);

    /// <summary>At most <paramref name="n"/> characters, an ellipsis marking the cut.</summary>
    public static string Truncate(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";

    /// <summary>Terminal colours: only on a terminal, and not when NO_COLOR is set.</summary>
    public static bool UseColor => !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null;

    /// <summary>The colour scale of a set of responses: their largest credit magnitude, so that colours compare across them.</summary>
    public static double Scale(IEnumerable<Protos.V1.ScoredItem> items) =>
        items.SelectMany(i => i.Credits).Select(c => Math.Abs((double)c)).DefaultIfEmpty(0).Max();

    /// <summary>
    /// Scored responses as `score` and `decode` print them: a title line, the tokens coloured by credit (one
    /// scale for all of them, so colours compare), Q as a sparkline, then whatever <paramref name="after"/> adds.
    /// Only the first <paramref name="shown"/> are printed (all by default); the colour scale covers them all.
    /// </summary>
    public static void Heatmaps(IReadOnlyList<Protos.V1.ScoredItem> items, Func<Protos.V1.ScoredItem, string> title,
        Action<Protos.V1.ScoredItem>? after = null, int? shown = null)
    {
        bool color = UseColor;
        double scale = Scale(items);
        foreach (var item in items.Take(shown ?? items.Count))
        {
            Console.WriteLine();
            Console.WriteLine(title(item));
            Console.WriteLine($"  {Client.Rendering.ConsoleHeatmap.Tokens(item, scale, color)}");
            Console.WriteLine($"  Q {Client.Rendering.ConsoleHeatmap.Sparkline(item.QValues)}  " +
                $"({Client.Rendering.Signed.Format(item.QValues.FirstOrDefault(), 3)} -> {Client.Rendering.Signed.Format(item.QValues.LastOrDefault(), 3)})");
            after?.Invoke(item);
        }
        if (!color) Console.WriteLine("\n(no terminal colours: each token is shown as [text|credit])");
    }
}
