using QService.Runtime.Loading;
using QService.Runtime.Tokenization;

namespace QService.Cli.Commands;

static class CliErrors
{
    /// <summary>Runs a command body; expected failures print one line to stderr and exit 1 instead of a stack trace.</summary>
    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is CheckpointException or TokenizerLoadException or ArgumentException or InvalidOperationException or FileNotFoundException or DirectoryNotFoundException)
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
}
