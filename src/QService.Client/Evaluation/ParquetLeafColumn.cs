using System.Collections;
using Parquet;
using Parquet.Schema;

namespace QService.Client.Evaluation;

/// <summary>
/// One leaf column of a row group as Parquet.Net's raw reader gives it: the non-null values packed together and a definition and
/// repetition level per entry, in arrays reused from group to group (<see cref="ParquetLeafBuffers"/>); and where each row's
/// entries and values start, so that a row is sliced out on demand and the rest of the group stays unboxed.
/// </summary>
abstract class ParquetLeafColumn(DataField field)
{
    int[] _definitions = [], _entryStart = [], _valueStart = [];

    public DataField Field { get; } = field;

    /// <summary>Whether a leaf of this type can be read: values (numbers, text as ReadOnlyMemory&lt;char&gt;), not byte arrays.</summary>
    public static bool CanRead(DataField field) => field.ClrType.IsValueType;

    public static async ValueTask<ParquetLeafColumn> ReadAsync(ParquetRowGroupReader group, DataField field, int rows, ParquetLeafBuffers buffers,
        CancellationToken cancellation)
    {
        var leaf = field.ClrType == typeof(ReadOnlyMemory<char>)
            ? new TextLeaf(field)
            : (ParquetLeafColumn)Activator.CreateInstance(typeof(ValueLeaf<>).MakeGenericType(field.ClrType), field)!;
        long entries = group.GetMetadata(field)?.MetaData?.NumValues ?? throw new InvalidDataException($"Parquet column '{field.Path}' has no metadata");
        int count = checked((int)entries);
        var definitions = field.MaxDefinitionLevel > 0 ? buffers.Get<int>(field.Path + "#definitions", count) : null;
        var repetitions = field.MaxRepetitionLevel > 0 ? buffers.Get<int>(field.Path + "#repetitions", count) : null;
        await leaf.ReadValuesAsync(group, count, definitions, repetitions, buffers, cancellation);
        leaf.Index(rows, count, definitions, repetitions, buffers);
        return leaf;
    }

    protected abstract ValueTask ReadValuesAsync(ParquetRowGroupReader group, int entries, int[]? definitions, int[]? repetitions,
        ParquetLeafBuffers buffers, CancellationToken cancellation);

    void Index(int rows, int entries, int[]? definitions, int[]? repetitions, ParquetLeafBuffers buffers)
    {
        _definitions = definitions ?? [];
        _entryStart = buffers.Get<int>(Field.Path + "#entry-start", rows + 1);
        _valueStart = buffers.Get<int>(Field.Path + "#value-start", rows + 1);
        int row = -1, values = 0;
        for (int e = 0; e < entries; e++)
        {
            // Repetition level 0 starts a row; only entries defined to the leaf's full depth have a value.
            if (repetitions is null || repetitions[e] == 0)
            {
                if (++row >= rows) throw new InvalidDataException($"Parquet column '{Field.Path}' has more rows than its row group");
                (_entryStart[row], _valueStart[row]) = (e, values);
            }
            if (HasValue(e)) values++;
        }
        for (int r = row + 1; r <= rows; r++) (_entryStart[r], _valueStart[r]) = (entries, values);
    }

    /// <summary>The row's entries are <c>FirstEntry(row)</c> up to <c>FirstEntry(row + 1)</c>.</summary>
    public int FirstEntry(int row) => _entryStart[row];

    /// <summary>The index of the row's first value among the packed values.</summary>
    public int FirstValue(int row) => _valueStart[row];

    public int Definition(int entry) => Field.MaxDefinitionLevel == 0 ? 0 : _definitions[entry];

    public bool HasValue(int entry) => Definition(entry) == Field.MaxDefinitionLevel;

    /// <summary>A packed value as the parser takes it: boxed, text as a string.</summary>
    public abstract object Value(int index);

    /// <summary>Packed values copied out as an array of their own type (token ids as int[]).</summary>
    public abstract IList Values(int index, int count);

    abstract class Typed<T>(DataField field) : ParquetLeafColumn(field) where T : struct
    {
        protected T[] Packed { get; private set; } = [];

        protected override async ValueTask ReadValuesAsync(ParquetRowGroupReader group, int entries, int[]? definitions, int[]? repetitions,
            ParquetLeafBuffers buffers, CancellationToken cancellation)
        {
            Packed = buffers.Get<T>(Field.Path + "#values", entries);
            await group.ReadRawAsync(Field, Packed.AsMemory(0, entries), definitions?.AsMemory(0, entries), repetitions?.AsMemory(0, entries), cancellation);
        }
    }

    sealed class ValueLeaf<T>(DataField field) : Typed<T>(field) where T : struct
    {
        public override object Value(int index) => Packed[index];
        public override IList Values(int index, int count) => Packed[index..(index + count)];
    }

    sealed class TextLeaf(DataField field) : Typed<ReadOnlyMemory<char>>(field)
    {
        public override object Value(int index) => new string(Packed[index].Span);
        public override IList Values(int index, int count) => Packed[index..(index + count)].Select(t => new string(t.Span)).ToArray();
    }
}

/// <summary>
/// The arrays leaf columns are read into, by column and purpose, kept for the whole file: each row group reuses them (grown when a
/// group needs more), so reading a group allocates only what Parquet.Net needs to decode it.
/// </summary>
sealed class ParquetLeafBuffers
{
    readonly Dictionary<string, Array> _arrays = [];

    public T[] Get<T>(string key, int length)
    {
        if (!_arrays.TryGetValue(key, out var array) || array.Length < length) _arrays[key] = array = new T[length];
        return (T[])array;
    }
}
