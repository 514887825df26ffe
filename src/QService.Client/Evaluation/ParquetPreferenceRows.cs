using System.Runtime.CompilerServices;
using Parquet;
using Parquet.Schema;

namespace QService.Client.Evaluation;

/// <summary>
/// The rows of a Parquet preference dataset, reading only the named columns (others, however large, are never read), one row
/// group at a time: the group's needed columns are held packed as Parquet.Net decodes them, in arrays the next group reuses,
/// and each row's values are built only when the row is reached. A named column the file lacks is absent from the rows; a null value is present as null.
/// </summary>
static class ParquetPreferenceRows
{
    public static async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> ReadAsync(string path, IEnumerable<string> names,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        await using var reader = await ParquetReader.CreateAsync(path, cancellationToken: cancellation);
        var fields = names.Distinct().Select(n => reader.Schema.Fields.FirstOrDefault(f => f.Name == n)).OfType<Field>().ToArray();
        var buffers = new ParquetLeafBuffers();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            int rows = checked((int)group.RowCount);
            var columns = new ParquetColumnValues[fields.Length];
            for (int c = 0; c < fields.Length; c++) columns[c] = await ParquetColumnValues.ReadAsync(group, fields[c], rows, buffers, cancellation);
            for (int r = 0; r < rows; r++)
            {
                var row = new Dictionary<string, object?>(fields.Length);
                for (int c = 0; c < fields.Length; c++) row[fields[c].Name] = columns[c].Value(r);
                yield return row;
            }
        }
    }
}
