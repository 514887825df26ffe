using System.Text.Json;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;

namespace QService.Cli.Tests;

/// <summary>Small preference files for the eval tests, JSONL or Parquet, and the eval output read back.</summary>
static class EvalTestData
{
    public const string Phone = "Review of the phone:";

    /// <summary>Six demo-language pairs; the last two are deliberately reversed (the worse response as chosen).</summary>
    public static readonly (string Prompt, string Chosen, string Rejected, string Subset)[] Pairs =
    [
        (Phone, " The battery is long. The screen is excellent.", " The delivery is long. The screen is awful.", "easy"),
        ("Review of the laptop:", " The build is sturdy.", " The fan is loud.", "easy"),
        ("Review of the camera:", " The price is great. The wait is short.", " The price is awful. The wait is long.", "easy"),
        (Phone, " The speaker is excellent.", " The speaker is okay.", "hard"),
        ("Review of the kettle:", " The build is broken.", " The build is sturdy.", "reversed"),
        ("Review of the watch:", " The battery is short. The fan is loud.", " The battery is long.", "reversed"),
    ];

    public static void WriteJsonLines(string path, IEnumerable<IDictionary<string, object?>> rows) =>
        File.WriteAllLines(path, rows.Select(r => JsonSerializer.Serialize(r)));

    /// <summary>Writes <paramref name="rows"/> as Parquet, in row groups of <paramref name="rowsPerGroup"/> (all in one by default).</summary>
    public static async Task WriteParquetAsync(string path, ParquetSchema schema, IEnumerable<IDictionary<string, object?>> rows,
        int rowsPerGroup = int.MaxValue)
    {
        await using var stream = File.Create(path);
        bool append = false;
        foreach (var group in rows.Chunk(rowsPerGroup))
        {
            await ParquetSerializer.SerializeUntypedAsync(group, schema, stream, new ParquetOptions { Append = append });
            append = true;
        }
    }

    public static List<JsonElement> ReadOutput(string path) =>
        File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
}
