using System.Runtime.CompilerServices;
using System.Text.Json;
using Parquet;

namespace QService.Client.Evaluation;

/// <summary>
/// Reads a preference dataset as a stream of rows, JSONL (one JSON object a line) or Parquet (by extension), without holding
/// the file: JSONL a line at a time, Parquet a row group at a time and only the columns named in <see cref="PreferenceColumns"/>
/// (<see cref="ParquetPreferenceRows"/>), so memory follows the row group's needed columns, not the file.
/// A JSONL line that is not a JSON object becomes a bad row, never a failure.
/// </summary>
public static class PreferenceDataset
{
    public static bool IsParquet(string path) => path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase);

    /// <summary>The rows of <paramref name="path"/> from row <paramref name="skip"/> on (earlier rows are read past, not parsed).</summary>
    public static async IAsyncEnumerable<PreferenceRow> ReadAsync(string path, PreferenceColumns? columns = null, bool appendEos = true, long skip = 0,
        [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        columns ??= new PreferenceColumns();
        var parser = new PreferenceRowParser(columns, appendEos);
        var raw = IsParquet(path) ? ReadParquetAsync(path, columns, cancellation) : ReadJsonLinesAsync(path, cancellation);
        long index = 0;
        await foreach (var row in raw.WithCancellation(cancellation))
        {
            // Parse even the rows skipped on resume: the first row decides whether prompts are implicit.
            var parsed = row.Values is null ? PreferenceRow.Bad(index, null, row.Error!) : parser.Parse(index, row.Values);
            if (index++ >= skip) yield return parsed;
        }
    }

    /// <summary>How many rows the file has (Parquet: from its footer; JSONL: its non-empty lines, counted without parsing).</summary>
    public static async Task<long> CountRowsAsync(string path, CancellationToken cancellation = default)
    {
        if (IsParquet(path))
        {
            await using var reader = await ParquetReader.CreateAsync(path, cancellationToken: cancellation);
            return reader.Metadata?.NumRows ?? 0;
        }
        long rows = 0;
        using var lines = new StreamReader(path);
        while (await lines.ReadLineAsync(cancellation) is string line) if (line.Length > 0) rows++;
        return rows;
    }

    readonly record struct RawRow(IReadOnlyDictionary<string, object?>? Values, string? Error);

    static async IAsyncEnumerable<RawRow> ReadJsonLinesAsync(string path, [EnumeratorCancellation] CancellationToken cancellation)
    {
        using var reader = new StreamReader(path);
        while (await reader.ReadLineAsync(cancellation) is string line)
        {
            if (line.Length == 0) continue;
            RawRow row;
            try
            {
                using var doc = JsonDocument.Parse(line);
                row = doc.RootElement.ValueKind == JsonValueKind.Object
                    ? new RawRow((IReadOnlyDictionary<string, object?>)ToClr(doc.RootElement)!, null)
                    : new RawRow(null, "the line is not a JSON object");
            }
            catch (JsonException e) { row = new RawRow(null, $"not JSON: {e.Message}"); }
            yield return row;
        }
    }

    /// <summary>JSON as the CLR shapes Parquet.Net's untyped reader gives: strings, longs, doubles, lists, dictionaries.</summary>
    static object? ToClr(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? l : (object)e.GetDouble(), // (object): else the long would widen to double
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => e.EnumerateArray().Select(ToClr).ToList(),
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => ToClr(p.Value)),
        _ => null,
    };

    static async IAsyncEnumerable<RawRow> ReadParquetAsync(string path, PreferenceColumns columns, [EnumeratorCancellation] CancellationToken cancellation)
    {
        var names = new[] { columns.Prompt, columns.Chosen, columns.Rejected, columns.Subset };
        await foreach (var row in ParquetPreferenceRows.ReadAsync(path, names, cancellation)) yield return new RawRow(row, null);
    }
}
