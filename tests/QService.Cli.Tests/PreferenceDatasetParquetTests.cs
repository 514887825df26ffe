using Parquet;
using Parquet.Schema;
using Parquet.Serialization;
using QService.Client.Evaluation;

namespace QService.Cli.Tests;

/// <summary>
/// Parquet preference datasets read column by column: every format parses as its JSONL twin does, across row groups, with
/// nulls as bad rows, and columns the parser does not need are never read.
/// </summary>
public class PreferenceDatasetParquetTests
{
    static async Task<List<PreferenceRow>> Read(string path, PreferenceColumns? columns = null, long skip = 0)
    {
        var rows = new List<PreferenceRow>();
        await foreach (var row in PreferenceDataset.ReadAsync(path, columns, skip: skip)) rows.Add(row);
        return rows;
    }

    /// <summary>The rows parsed from Parquet and from the same rows as JSONL.</summary>
    static async Task<(List<PreferenceRow> Parquet, List<PreferenceRow> Json)> ReadBoth(ParquetSchema schema, List<IDictionary<string, object?>> rows,
        PreferenceColumns? columns = null, int rowsPerGroup = int.MaxValue)
    {
        using var dir = new TempFolder();
        string parquet = Path.Combine(dir.Path, "data.parquet"), jsonl = Path.Combine(dir.Path, "data.jsonl");
        await EvalTestData.WriteParquetAsync(parquet, schema, rows, rowsPerGroup);
        EvalTestData.WriteJsonLines(jsonl, rows);
        return (await Read(parquet, columns), await Read(jsonl, columns));
    }

    static IDictionary<string, object?> Row(params (string Name, object? Value)[] values) => values.ToDictionary(v => v.Name, v => v.Value);

    static IDictionary<string, object?> Message(string role, string content, int turn) =>
        new Dictionary<string, object?> { ["role"] = role, ["content"] = content, ["turn"] = turn };

    static List<IDictionary<string, object?>> Turns(params (string Role, string Content)[] turns) =>
        [.. turns.Select((t, i) => Message(t.Role, t.Content, i))];

    static ListField Ids(string name) => new(name, new DataField<int>("element"));

    static ListField Conversation(string name) =>
        new(name, new StructField("element", new DataField<string>("role"), new DataField<string>("content"), new DataField<int>("turn")));

    static void AssertSame(List<PreferenceRow> parquet, List<PreferenceRow> json, int count)
    {
        Assert.Equal(count, parquet.Count);
        Assert.Equal(json, parquet);
    }

    [Fact]
    public async Task Strings_WithSubsets_AndRenamedColumns_ParseAsInJsonLines()
    {
        var schema = new ParquetSchema(new DataField<string>("q"), new DataField<string>("good"), new DataField<string>("bad"), new DataField<string>("kind"));
        var rows = EvalTestData.Pairs.Select(p => Row(("q", p.Prompt), ("good", p.Chosen), ("bad", p.Rejected), ("kind", p.Subset))).ToList();
        var (parquet, json) = await ReadBoth(schema, rows, new PreferenceColumns("q", "good", "bad", "kind"));
        AssertSame(parquet, json, EvalTestData.Pairs.Length);
        Assert.All(parquet, r => Assert.False(r.IsBad, r.Error));
        Assert.Equal(EvalTestData.Pairs.Select(p => p.Subset), parquet.Select(r => r.Subset));
        Assert.Equal(EvalTestData.Pairs[1].Chosen, parquet[1].Chosen!.Response);
    }

    [Fact]
    public async Task TokenIds_IntAndLong_ParseAsInJsonLines()
    {
        var schema = new ParquetSchema(Ids("prompt"), Ids("chosen"), new ListField("rejected", new DataField<long>("element")));
        var rows = new List<IDictionary<string, object?>>
        {
            Row(("prompt", new List<int> { 1, 2, 3 }), ("chosen", new List<int> { 10, 11 }), ("rejected", new List<long> { 12 })),
            Row(("prompt", new List<int> { 4 }), ("chosen", new List<int> { 13 }), ("rejected", new List<long> { 14, 15, 16 })),
        };
        var (parquet, json) = await ReadBoth(schema, rows);
        AssertSame(parquet, json, 2);
        Assert.Equal([4], parquet[1].Rejected!.PromptTokenIds);
        Assert.Equal([14, 15, 16], parquet[1].Rejected!.ResponseTokenIds);
    }

    [Fact]
    public async Task Conversations_ReadRoleAndContent_AsInJsonLines()
    {
        var schema = new ParquetSchema(Conversation("prompt"), Conversation("chosen"), Conversation("rejected"));
        var rows = new List<IDictionary<string, object?>>
        {
            Row(("prompt", Turns(("system", "Be brief."), ("user", "Review the phone."))), ("chosen", Turns(("assistant", " The battery is long."))),
                ("rejected", Turns(("assistant", " The delivery is long.")))),
        };
        var (parquet, json) = await ReadBoth(schema, rows);
        AssertSame(parquet, json, 1);
        Assert.False(parquet[0].IsBad, parquet[0].Error);
        Assert.Equal(["system", "user"], parquet[0].Chosen!.Messages.Select(m => m.Role));
        Assert.Equal(" The delivery is long.", parquet[0].Rejected!.Response);
    }

    [Fact]
    public async Task ImplicitPrompts_OfTextAndOfConversations_SplitAsInJsonLines()
    {
        var text = EvalTestData.Pairs.Select(p => Row(("chosen", p.Prompt + p.Chosen), ("rejected", p.Prompt + p.Rejected))).ToList();
        var (parquet, json) = await ReadBoth(new ParquetSchema(new DataField<string>("chosen"), new DataField<string>("rejected")), text);
        AssertSame(parquet, json, EvalTestData.Pairs.Length);
        Assert.Equal("Review of the phone: The", parquet[0].Chosen!.Prompt);

        var chats = new List<IDictionary<string, object?>>
        {
            Row(("chosen", Turns(("user", "Review the phone."), ("assistant", " Long battery."))),
                ("rejected", Turns(("user", "Review the phone."), ("assistant", " Slow delivery.")))),
        };
        (parquet, json) = await ReadBoth(new ParquetSchema(Conversation("chosen"), Conversation("rejected")), chats);
        AssertSame(parquet, json, 1);
        Assert.Equal(" Slow delivery.", parquet[0].Rejected!.Response);
    }

    [Fact]
    public async Task ManyRowGroups_GiveEveryRowInOrder_AndSkipCrossesGroups()
    {
        var schema = new ParquetSchema(Ids("prompt"), Ids("chosen"), Ids("rejected"), new DataField<int>("subset"));
        var rows = Enumerable.Range(0, 25).Select(i => Row(("prompt", Enumerable.Range(0, i % 4 + 1).ToList()),
            ("chosen", new List<int> { 100 + i }), ("rejected", new List<int> { 200 + i, 7 }), ("subset", i % 3))).ToList();
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "groups.parquet");
        await EvalTestData.WriteParquetAsync(path, schema, rows, rowsPerGroup: 4);
        await using (var reader = await ParquetReader.CreateAsync(path)) Assert.Equal(7, reader.RowGroupCount);

        var read = await Read(path);
        Assert.Equal(Enumerable.Range(0, 25).Select(i => (long)i), read.Select(r => r.Index));
        Assert.Equal(Enumerable.Range(0, 25).Select(i => 100 + i), read.Select(r => r.Chosen!.ResponseTokenIds.Single()));
        Assert.Equal(Enumerable.Range(0, 25).Select(i => i % 4 + 1), read.Select(r => r.Chosen!.PromptTokenIds.Count));
        Assert.Equal(Enumerable.Range(0, 25).Select(i => (i % 3).ToString()), read.Select(r => r.Subset));
        var skipped = await Read(path, skip: 10);
        Assert.Equal(read.Skip(10), skipped);
    }

    [Fact]
    public async Task Nulls_AndEmptyLists_AreBadRows_AsInJsonLines()
    {
        var schema = new ParquetSchema(new ListField("prompt", new DataField<int?>("element")), Ids("chosen"), Ids("rejected"),
            new DataField<string>("subset"));
        var rows = new List<IDictionary<string, object?>>
        {
            // A null prompt in the first row is a bad row, not a sign of implicit prompts: the column exists.
            Row(("prompt", null), ("chosen", new List<int> { 1 }), ("rejected", new List<int> { 2 }), ("subset", "a")),
            Row(("prompt", new List<int?> { 5 }), ("chosen", null), ("rejected", new List<int> { 2 }), ("subset", "b")),
            Row(("prompt", new List<int?> { 5 }), ("chosen", new List<int> { 1 }), ("rejected", new List<int> { 2 }), ("subset", null)),
            Row(("prompt", new List<int?> { 5, null }), ("chosen", new List<int> { 1 }), ("rejected", new List<int> { 2 }), ("subset", "c")),
            Row(("prompt", new List<int?> { 5 }), ("chosen", new List<int> { 1 }), ("rejected", new List<int>()), ("subset", "d")),
        };
        var (parquet, json) = await ReadBoth(schema, rows);
        AssertSame(parquet, json, 5);
        Assert.Equal(["missing column 'prompt'", "missing column 'chosen'", null, "a token id list holds a non-integer", "'rejected' is an empty list"],
            parquet.Select(r => r.Error));
        Assert.Equal(["a", "b", null, "c", "d"], parquet.Select(r => r.Subset));
    }

    [Fact]
    public async Task ColumnsTheParserDoesNotNeed_AreNeverRead()
    {
        // A large extra column whose bytes are then ruined: reading it at all would fail.
        var schema = new ParquetSchema(new DataField<string>("prompt"), new DataField<string>("chosen"), new DataField<string>("notes"),
            new DataField<string>("rejected"));
        var rows = EvalTestData.Pairs.Select(p => Row(("prompt", p.Prompt), ("chosen", p.Chosen), ("notes", new string('n', 100_000)),
            ("rejected", p.Rejected))).ToList();
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "notes.parquet");
        await EvalTestData.WriteParquetAsync(path, schema, rows);
        await RuinColumnAsync(path, "notes");
        await using (var stream = File.OpenRead(path))
            await Assert.ThrowsAnyAsync<Exception>(async () => await ParquetSerializer.DeserializeUntypedAsync(stream)); // the ruin is real

        var read = await Read(path);
        Assert.Equal(EvalTestData.Pairs.Length, read.Count);
        Assert.All(read, r => Assert.False(r.IsBad, r.Error));
        Assert.Equal(EvalTestData.Pairs.Select(p => p.Rejected), read.Select(r => r.Rejected!.Response));
    }

    /// <summary>Overwrites the column chunk of <paramref name="column"/> (in every row group) with bytes no reader can decode.</summary>
    static async Task RuinColumnAsync(string path, string column)
    {
        var chunks = new List<(long Offset, long Length)>();
        await using (var reader = await ParquetReader.CreateAsync(path))
        {
            var field = reader.Schema.DataFields.Single(f => f.Name == column);
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                var meta = reader.OpenRowGroupReader(g).GetMetadata(field)!.MetaData!;
                chunks.Add((meta.DataPageOffset, meta.TotalCompressedSize));
            }
        }
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        foreach (var (offset, length) in chunks)
        {
            file.Position = offset;
            await file.WriteAsync(Enumerable.Repeat((byte)0xFF, checked((int)length)).ToArray());
        }
    }
}
