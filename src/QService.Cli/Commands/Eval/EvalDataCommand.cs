using System.CommandLine;
using System.Text;
using System.Text.Json;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;
using QService.Demo;

namespace QService.Cli.Commands.Eval;

/// <summary>
/// `qservice eval make-data`: preference datasets to evaluate on. `--kind demo`: pairs of the demo review language with
/// their true rewards (the held-out pairs of docs/demo.md by default: seed 1000, never trained on), subset = the true
/// reward gap. `--kind random-ids`: random token ids (prompt and both responses), for benchmarks on pairs without a
/// tokenizer and for large files. JSONL or Parquet by the output's extension.
/// </summary>
static class EvalDataCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output") { Description = ".jsonl or .parquet", Required = true };
        var kind = new Option<string>("--kind") { Description = "demo or random-ids", DefaultValueFactory = _ => "demo" };
        var pairs = new Option<long>("--pairs") { Description = "how many pairs", DefaultValueFactory = _ => 400 };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 1000 };
        var vocab = new Option<int>("--vocab") { Description = "random-ids: token ids below this", DefaultValueFactory = _ => 32000 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "random-ids: prompt length", DefaultValueFactory = _ => 64 };
        var responseTokens = new Option<int>("--response-tokens") { Description = "random-ids: each response's length", DefaultValueFactory = _ => 64 };
        // 1,000 rows a group, as Hugging Face datasets writes Parquet (its writer_batch_size; 100 for images and audio): the
        // files then read like the datasets people evaluate on, and a reader holds a few MB a group (2.5 MB at 640 ids a row).
        var rowGroup = new Option<int>("--row-group") { Description = "Parquet rows per row group", DefaultValueFactory = _ => 1_000 };
        var cmd = new Command("make-data", "Write a preference dataset: the demo language's pairs with true labels, or random token ids.")
            { output, kind, pairs, seed, vocab, promptTokens, responseTokens, rowGroup };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var rows = r.GetValue(kind) switch
            {
                "demo" => DemoRows(r.GetValue(pairs), r.GetValue(seed)),
                "random-ids" => RandomIdRows(r.GetValue(pairs), r.GetValue(seed), r.GetValue(vocab), r.GetValue(promptTokens), r.GetValue(responseTokens)),
                var k => throw new ArgumentException($"--kind: '{k}' is neither demo nor random-ids"),
            };
            string path = r.GetValue(output)!;
            long written = Eval.PreferenceDatasetWriter.Write(path, rows, r.GetValue(rowGroup));
            Console.WriteLine($"wrote {path}: {written} pairs ({new FileInfo(path).Length:N0} bytes)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>The demo language's pairs (better, worse) as TRL rows with the true rewards and their gap as the subset.</summary>
    static IEnumerable<Dictionary<string, object>> DemoRows(long count, int seed)
    {
        foreach (var (better, worse) in DemoEvaluation.HeldOutPairs(checked((int)count), seed))
        {
            int good = ReviewLanguage.Reward(better.Response), bad = ReviewLanguage.Reward(worse.Response);
            yield return new Dictionary<string, object>
            {
                ["prompt"] = better.Prompt, ["chosen"] = better.Response, ["rejected"] = worse.Response,
                ["subset"] = good - bad >= 3 ? "gap 3+" : $"gap {good - bad}",
                ["chosen_true_reward"] = good, ["rejected_true_reward"] = bad,
            };
        }
    }

    static IEnumerable<Dictionary<string, object>> RandomIdRows(long count, int seed, int vocab, int promptTokens, int responseTokens)
    {
        var rng = new Random(seed);
        List<int> Ids(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToList();
        for (long i = 0; i < count; i++)
            yield return new Dictionary<string, object>
                { ["prompt"] = Ids(promptTokens), ["chosen"] = Ids(responseTokens), ["rejected"] = Ids(responseTokens) };
    }
}

/// <summary>Writes dataset rows (strings, ints, lists of ints) as JSONL or as Parquet in row groups, never holding more than one group.</summary>
static class PreferenceDatasetWriter
{
    public static long Write(string path, IEnumerable<Dictionary<string, object>> rows, int rowGroup)
    {
        if (!PreferenceDatasetIsParquet(path))
        {
            using var w = new StreamWriter(path, false, new UTF8Encoding(false)) { NewLine = "\n" };
            long n = 0;
            foreach (var row in rows) { w.WriteLine(JsonSerializer.Serialize(row)); n++; }
            return n;
        }
        long written = 0;
        ParquetSchema? schema = null;
        foreach (var chunk in rows.Chunk(Math.Max(1, rowGroup)))
        {
            schema ??= new ParquetSchema(chunk[0].Select(kv => kv.Value switch
            {
                string => (Field)new DataField<string>(kv.Key),
                int => new DataField<int>(kv.Key),
                List<int> => new ListField(kv.Key, new DataField<int>("element")),
                var v => throw new ArgumentException($"no Parquet column for {v.GetType()}"),
            }).ToArray());
            using (var stream = new FileStream(path, written == 0 ? FileMode.Create : FileMode.Open, FileAccess.ReadWrite))
                ParquetSerializer.SerializeUntypedAsync(chunk.Select(d => (IDictionary<string, object?>)d!).ToList(), schema, stream,
                    new ParquetOptions { Append = written > 0 }).GetAwaiter().GetResult();
            written += chunk.Length;
        }
        return written;
    }

    static bool PreferenceDatasetIsParquet(string path) => Client.Evaluation.PreferenceDataset.IsParquet(path);
}
