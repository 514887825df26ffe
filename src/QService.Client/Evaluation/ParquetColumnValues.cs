using Parquet;
using Parquet.Schema;

namespace QService.Client.Evaluation;

/// <summary>
/// One column the parser needs, in one row group: its leaves read raw, and a row's value rebuilt from them in the shapes
/// <see cref="PreferenceRowParser"/> takes: a scalar (string, number), a list of scalars (token ids), a list of structs
/// (messages, of which only `role` and `content` are read), or null. Other shapes are not read and give a value the parser refuses.
/// </summary>
abstract class ParquetColumnValues
{
    public abstract object? Value(int row);

    public static async ValueTask<ParquetColumnValues> ReadAsync(ParquetRowGroupReader group, Field field, int rows, ParquetLeafBuffers buffers,
        CancellationToken cancellation)
    {
        async ValueTask<ParquetLeafColumn> Leaf(DataField d) => await ParquetLeafColumn.ReadAsync(group, d, rows, buffers, cancellation);
        switch (field)
        {
            case DataField { MaxRepetitionLevel: 0 } scalar when ParquetLeafColumn.CanRead(scalar):
                return new ScalarColumn(await Leaf(scalar));
            case ListField { Item: DataField { MaxRepetitionLevel: 1 } element } list when ParquetLeafColumn.CanRead(element):
                return new ListColumn(list, await Leaf(element));
            case ListField { Item: StructField message } list when MessageFields(message) is { Length: > 0 } fields:
                var leaves = new ParquetLeafColumn[fields.Length];
                for (int i = 0; i < fields.Length; i++) leaves[i] = await Leaf(fields[i]);
                return new MessagesColumn(list, message, leaves);
            default:
                return new UnreadColumn(field);
        }
    }

    static DataField[] MessageFields(StructField message) =>
        [.. message.Fields.OfType<DataField>().Where(f => f.MaxRepetitionLevel == 1 && ParquetLeafColumn.CanRead(f) && f.Name is "role" or "content")];

    sealed class ScalarColumn(ParquetLeafColumn leaf) : ParquetColumnValues
    {
        public override object? Value(int row) => leaf.HasValue(row) ? leaf.Value(leaf.FirstValue(row)) : null;
    }

    /// <summary>A list column: null, empty, or its elements, told apart by the first entry's definition level.</summary>
    abstract class ListColumnBase(ListField list, ParquetLeafColumn structure) : ParquetColumnValues
    {
        /// <summary>The leaf whose levels give the list's structure (any of the list's leaves).</summary>
        protected ParquetLeafColumn Structure { get; } = structure;

        public override object? Value(int row)
        {
            int first = Structure.FirstEntry(row), end = Structure.FirstEntry(row + 1);
            if (end == first) return null;
            // Parquet.Net's list level is where the list has an element; one less is where it exists (but is empty).
            int definition = Structure.Definition(first);
            if (definition < list.MaxDefinitionLevel) return definition < list.MaxDefinitionLevel - 1 ? null : Array.Empty<object?>();
            return Elements(row, first, end);
        }

        protected abstract object Elements(int row, int first, int end);
    }

    sealed class ListColumn(ListField list, ParquetLeafColumn element) : ListColumnBase(list, element)
    {
        protected override object Elements(int row, int first, int end)
        {
            var leaf = Structure;
            int value = leaf.FirstValue(row);
            bool hasNulls = false;
            for (int e = first; e < end && !hasNulls; e++) hasNulls = !leaf.HasValue(e);
            if (!hasNulls) return leaf.Values(value, end - first);
            var items = new object?[end - first];
            for (int e = first; e < end; e++) items[e - first] = leaf.HasValue(e) ? leaf.Value(value++) : null;
            return items;
        }
    }

    /// <summary>A list of structs as dictionaries of the fields read; the leaves share the list's entries one for one.</summary>
    sealed class MessagesColumn(ListField list, StructField message, ParquetLeafColumn[] leaves) : ListColumnBase(list, leaves[0])
    {
        protected override object Elements(int row, int first, int end)
        {
            var values = leaves.Select(l => l.FirstValue(row)).ToArray();
            var items = new object?[end - first];
            for (int e = first; e < end; e++)
            {
                if (leaves[0].Definition(e) < message.MaxDefinitionLevel) continue; // a null message
                var fields = new Dictionary<string, object?>(leaves.Length);
                for (int k = 0; k < leaves.Length; k++) fields[leaves[k].Field.Name] = leaves[k].HasValue(e) ? leaves[k].Value(values[k]++) : null;
                items[e - first] = fields;
            }
            return items;
        }
    }

    /// <summary>A shape the parser has no use for (maps, nested lists, structs): left unread, every row's value refused.</summary>
    sealed class UnreadColumn(Field field) : ParquetColumnValues
    {
        readonly object _value = new UnreadValue(field);
        public override object? Value(int row) => _value;
    }

    sealed record UnreadValue(Field Field)
    {
        public override string ToString() => $"({Field.SchemaType} column '{Field.Name}', not read)";
    }
}
