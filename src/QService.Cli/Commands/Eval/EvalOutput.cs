using System.Text;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;
using QService.Client.Evaluation;

namespace QService.Cli.Commands.Eval;

/// <summary>
/// The per-example output, written as results come (in input order, one row per input row, bad rows included), JSONL or
/// Parquet by extension. JSONL is flushed after every row; Parquet is appended in row groups of about 1024 rows, a whole
/// number of requests (<see cref="ParquetGroupRows"/>), so a resumed run writes the same groups, hence the same bytes, as an
/// unbroken one.
/// </summary>
abstract class EvalOutput : IAsyncDisposable
{
    /// <summary>Rows per Parquet row group: about 1024, in whole requests, so that a complete file ends where a request ends.</summary>
    public static int ParquetGroupRows(int requestRows) => (1024 + requestRows - 1) / requestRows * requestRows;

    public static bool IsParquet(string path) => PreferenceDataset.IsParquet(path);

    /// <summary>
    /// What a previous run left in <paramref name="path"/>: its rows of whole requests of <paramref name="requestRows"/> rows, in
    /// order. A JSONL file is cut back to them (a kill may leave half a line, or part of a request's rows written), so that the
    /// resumed run sends the very requests the unbroken one sent; rows must be 0, 1, 2, ... or resuming is refused.
    /// </summary>
    public static async Task<List<PairResult>> ReadExistingAsync(string path, int requestRows, CancellationToken cancellation)
    {
        if (!File.Exists(path)) return [];
        var rows = IsParquet(path) ? await ReadParquetAsync(path, cancellation) : ReadJsonLines(path, requestRows);
        for (int i = 0; i < rows.Count; i++)
            if (rows[i].Index != i)
                throw new InvalidOperationException($"{path}: row {i} has index {rows[i].Index}; it is not the output of a run on this order");
        return rows;
    }

    static List<PairResult> ReadJsonLines(string path, int requestRows)
    {
        var rows = new List<PairResult>();
        var ends = new List<long> { 0 }; // ends[k]: the byte after row k - 1
        var bytes = File.ReadAllBytes(path);
        for (int start = 0, nl; (nl = Array.IndexOf(bytes, (byte)'\n', start)) >= 0; start = nl + 1)
        {
            var row = EvalJson.Parse(Encoding.UTF8.GetString(bytes, start, nl - start));
            if (row is null) break;
            rows.Add(row);
            ends.Add(nl + 1);
        }
        int keep = rows.Count / requestRows * requestRows;
        using (var truncate = new FileStream(path, FileMode.Open, FileAccess.Write)) truncate.SetLength(ends[keep]);
        return rows[..keep];
    }

    static async Task<List<PairResult>> ReadParquetAsync(string path, CancellationToken cancellation)
    {
        var rows = new List<PairResult>();
        try
        {
            await foreach (var r in ParquetRowsAsync(path, cancellation)) rows.Add(r);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or Parquet.ParquetException)
        {
            throw new InvalidOperationException($"{path} is not a complete Parquet file (the run was killed while it wrote a row group): " +
                $"remove it and start again ({e.Message})");
        }
        return rows;
    }

    static async IAsyncEnumerable<PairResult> ParquetRowsAsync(string path,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        int groups;
        await using (var reader = await ParquetReader.CreateAsync(path, cancellationToken: cancellation)) groups = reader.RowGroupCount;
        await using var stream = File.OpenRead(path);
        for (int g = 0; g < groups; g++)
            foreach (var row in (await ParquetSerializer.DeserializeUntypedAsync(stream, null, g, cancellation)).Data)
                yield return ParquetRows.FromRow(row!);
    }

    public static EvalOutput Create(string path, bool resume, int requestRows) =>
        IsParquet(path) ? new ParquetOutput(path, resume && File.Exists(path), ParquetGroupRows(requestRows)) : new JsonLinesOutput(path, resume);

    public abstract ValueTask WriteAsync(PairResult result, CancellationToken cancellation);

    public abstract ValueTask DisposeAsync();

    sealed class JsonLinesOutput(string path, bool append) : EvalOutput
    {
        readonly StreamWriter _writer = new(path, append, new UTF8Encoding(false)) { NewLine = "\n" };

        public override async ValueTask WriteAsync(PairResult result, CancellationToken cancellation)
        {
            await _writer.WriteLineAsync(EvalJson.Line(result));
            await _writer.FlushAsync(cancellation);
        }

        public override async ValueTask DisposeAsync() => await _writer.DisposeAsync();
    }

    sealed class ParquetOutput(string path, bool append, int groupRows) : EvalOutput
    {
        readonly List<PairResult> _pending = [];
        bool _append = append;

        public override async ValueTask WriteAsync(PairResult result, CancellationToken cancellation)
        {
            _pending.Add(result);
            if ((result.Index + 1) % groupRows == 0) await FlushAsync();
        }

        async Task FlushAsync()
        {
            if (_pending.Count == 0) return;
            await using (var stream = new FileStream(path, _append ? FileMode.Open : FileMode.Create, FileAccess.ReadWrite))
                await ParquetSerializer.SerializeUntypedAsync(_pending.Select(ParquetRows.ToRow).ToList(), ParquetRows.Schema, stream,
                    new ParquetOptions { Append = _append });
            _append = true;
            _pending.Clear();
        }

        // Written on a normal end only: a partial group left by Ctrl-C is dropped, and a resume writes it again in full.
        public bool Complete { get; set; }

        public override async ValueTask DisposeAsync()
        {
            if (Complete) await FlushAsync();
        }
    }

    /// <summary>Marks the output finished, so that the last, partial Parquet row group is written.</summary>
    public void MarkComplete()
    {
        if (this is ParquetOutput p) p.Complete = true;
    }
}
