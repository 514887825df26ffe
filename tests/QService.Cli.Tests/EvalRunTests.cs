using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Parquet;
using QService.Client;
using QService.Client.Evaluation;

namespace QService.Cli.Tests;

/// <summary>
/// `qservice eval`: bad rows by row number, resume after a kill (JSONL and Parquet), the HTML report's figures, and the same as a
/// library call.
/// </summary>
[Collection(nameof(TwoPolicyServerCollection))]
public class EvalRunTests(TwoPolicyServer fixture)
{
    static string DemoData => Path.Combine(Fixtures.RepoRoot, "data", "demo-preferences.jsonl");

    [Fact]
    public async Task BadRows_AreScoredAround_CountedAndListedByRowNumber()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "bad.jsonl"), output = Path.Combine(dir.Path, "out.jsonl");
        string good = JsonSerializer.Serialize(new { prompt = EvalTestData.Phone, chosen = " The battery is long.", rejected = " The fan is loud." });
        string tooLong = string.Concat(Enumerable.Repeat(" The battery is long.", 60)); // about 300 tokens; the demo context is 128
        File.WriteAllLines(data,
        [
            good,
            JsonSerializer.Serialize(new { prompt = EvalTestData.Phone, rejected = " The fan is loud." }),
            good,
            JsonSerializer.Serialize(new { prompt = EvalTestData.Phone, chosen = " The battery is long.", rejected = "" }),
            JsonSerializer.Serialize(new { prompt = EvalTestData.Phone, chosen = tooLong, rejected = " The fan is loud." }),
            "{not json",
            good,
        ]);
        var (code, stdout, stderr) = await CliProcess.Run("eval", "--data", data, "--output", output, "--server", fixture.Address, "--json");
        Assert.True(code == 0, stderr);
        var summary = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(7, summary.GetProperty("rows").GetInt32());
        Assert.Equal(3, summary.GetProperty("pairs").GetInt32());
        Assert.Equal(4, summary.GetProperty("bad_rows").GetInt32());
        var bad = summary.GetProperty("bad_row_list").EnumerateArray()
            .ToDictionary(b => b.GetProperty("index").GetInt32(), b => b.GetProperty("error").GetString()!);
        Assert.Equal([1, 3, 4, 5], bad.Keys.Order());
        Assert.Equal("missing column 'chosen'", bad[1]);
        Assert.Equal("empty response in 'rejected'", bad[3]);
        Assert.Contains("rejected by the server", bad[4]);
        Assert.Contains("context", bad[4]);
        Assert.StartsWith("not JSON", bad[5]);
        // Every row has its line in the output, in order: bad ones with their error, none dropped.
        var rows = EvalTestData.ReadOutput(output);
        Assert.Equal(Enumerable.Range(0, 7), rows.Select(r => r.GetProperty("index").GetInt32()));
        Assert.Equal(bad[4], rows[4].GetProperty("error").GetString());
        Assert.Equal(rows[0].GetProperty("margin").GetDouble(), rows[6].GetProperty("margin").GetDouble(), 1e-5);
        // --fail-on-bad-rows makes them fatal to the exit code, still after writing everything.
        (code, _, _) = await CliProcess.Run("eval", "--data", data, "--output", output, "--server", fixture.Address, "--fail-on-bad-rows");
        Assert.Equal(2, code);
    }

    [Fact]
    public async Task KilledAtARandomPoint_ThenResumed_TheOutputIsByteIdenticalToAnUnbrokenRun_EvenAmidOtherTraffic()
    {
        using var dir = new TempFolder();
        string unbroken = Path.Combine(dir.Path, "unbroken.jsonl"), resumed = Path.Combine(dir.Path, "resumed.jsonl");
        string[] common = ["--data", DemoData, "--server", fixture.Address, "--json"];
        var (code, _, stderr) = await CliProcess.Run(["eval", "--output", unbroken, .. common]);
        Assert.True(code == 0, stderr);

        // Another client evaluates the same pairs meanwhile, batched and cached with whatever else runs (--shared-batches).
        using var stopTraffic = new CancellationTokenSource();
        var traffic = Task.Run(async () =>
        {
            while (!stopTraffic.IsCancellationRequested)
                await CliProcess.Run(["eval", "--output", Path.Combine(dir.Path, "traffic.jsonl"), "--shared-batches", .. common]);
        });
        int killAfter = new Random().Next(20, 300);
        using (var run = StartEval(["--output", resumed, .. common]))
        {
            await Polling.Until(() => Task.FromResult(File.Exists(resumed) && File.ReadAllLines(resumed).Length >= killAfter), TimeSpan.FromSeconds(120),
                () => $"{killAfter} rows in the output");
            run.Kill();
            await run.WaitForExitAsync();
        }
        var before = File.ReadAllLines(resumed);
        Assert.True(before.Length < 400, "killed too late to test anything");
        (code, var stdout, stderr) = await CliProcess.Run(["eval", "--output", resumed, "--resume", .. common]);
        stopTraffic.Cancel();
        await traffic;
        Assert.True(code == 0, stderr);
        // The resume keeps whole requests (16 rows each: a kill can leave part of one, or half a line), so it sends the very requests
        // the unbroken run sent; the server answers reproducible requests with the same bits, whatever else it runs.
        var kept = int.Parse(Regex.Match(stderr, @"resuming after (\d+) rows").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.Equal(0, kept % 16);
        Assert.InRange(kept, before.Length - 17, before.Length);
        Assert.Equal(File.ReadAllBytes(unbroken), File.ReadAllBytes(resumed));
        Assert.Equal(400, JsonDocument.Parse(stdout).RootElement.GetProperty("pairs").GetInt32());
    }

    [Fact]
    public async Task ParquetOutput_KilledAfterARowGroup_ThenResumed_IsByteIdenticalToAnUnbrokenRun()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "pairs.jsonl");
        string unbroken = Path.Combine(dir.Path, "unbroken.parquet"), resumed = Path.Combine(dir.Path, "resumed.parquet");
        // Groups of 1,024 rows (64 requests of 16 pairs): the first lands long before the last of 4,000 rows.
        var (code, _, stderr) = await CliProcess.Run("eval", "make-data", "--pairs", "4000", "--output", data);
        Assert.True(code == 0, stderr);
        string[] common = ["--data", data, "--server", fixture.Address, "--json"];
        (code, _, stderr) = await CliProcess.Run(["eval", "--output", unbroken, .. common]);
        Assert.True(code == 0, stderr);
        Assert.Equal(4, await RowGroups(unbroken));

        int groupsAtKill;
        using (var run = StartEval(["--output", resumed, .. common]))
        {
            await Polling.Until(async () => await RowGroups(resumed) >= 1, TimeSpan.FromSeconds(120), () => "a first row group in the output");
            run.Kill();
            await run.WaitForExitAsync();
            groupsAtKill = await RowGroups(resumed);
        }
        Assert.InRange(groupsAtKill, 1, 3); // killed between groups, before the end
        (code, _, stderr) = await CliProcess.Run(["eval", "--output", resumed, "--resume", .. common]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"resuming after {groupsAtKill * 1024} rows", stderr);
        Assert.Equal(File.ReadAllBytes(unbroken), File.ReadAllBytes(resumed));
    }

    /// <summary>`qservice eval` started in the background, to be killed.</summary>
    static Process StartEval(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[ServerProcess.BuiltAssembly("QService.Cli", "qservice.dll"), "eval", .. args])
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>The row groups of a complete Parquet file; 0 while it is missing or being written.</summary>
    static async Task<int> RowGroups(string path)
    {
        try
        {
            await using var reader = await ParquetReader.CreateAsync(path);
            return reader.RowGroupCount;
        }
        catch (Exception) // missing, or a footer not yet (or never) written
        {
            return 0;
        }
    }

    [Fact]
    public async Task HtmlReport_FiguresHoldTheOutputsNumbers_AndTheWorstPairsHeatmaps()
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "out.jsonl"), html = Path.Combine(dir.Path, "report.html");
        var (code, _, stderr) = await CliProcess.Run(
            "eval", "--data", DemoData, "--output", output, "--server", fixture.Address, "--html", html, "--limit", "120");
        Assert.True(code == 0, stderr);
        var rows = EvalTestData.ReadOutput(output);
        Assert.Equal(120, rows.Count);
        string page = File.ReadAllText(html);
        Assert.StartsWith("<!DOCTYPE html>", page);
        Assert.DoesNotContain("<script", page);
        Assert.DoesNotContain("src=", page); // self-contained
        double D(Match m, string name) => double.Parse(m.Groups[name].Value, CultureInfo.InvariantCulture);
        // Histogram: the bins count every pair once, each where its margin falls.
        string histogram = Regex.Match(page, "<svg id=\"margin-histogram\".*?</svg>", RegexOptions.Singleline).Value;
        var bins = Regex.Matches(histogram, "data-low=\"(?<low>[^\"]+)\" data-high=\"(?<high>[^\"]+)\" data-count=\"(?<count>\\d+)\"");
        Assert.Equal(20, bins.Count);
        Assert.Equal(120, bins.Sum(b => int.Parse(b.Groups["count"].Value)));
        var margins = rows.Select(r => r.GetProperty("margin").GetDouble()).ToList();
        Assert.Equal(margins.Count(m => m >= D(bins[0], "low") && m < D(bins[0], "high")), int.Parse(bins[0].Groups["count"].Value));
        // Accuracy by length difference: each bucket's accuracy is that of the output's pairs in its range.
        string byDifference = Regex.Match(page, "<svg id=\"accuracy-by-length-difference\".*?</svg>", RegexOptions.Singleline).Value;
        var buckets = Regex.Matches(byDifference,
            "data-low=\"(?<low>[^\"]+)\" data-high=\"(?<high>[^\"]+)\" data-pairs=\"(?<pairs>\\d+)\" data-accuracy=\"(?<acc>[^\"]+)\"");
        Assert.NotEmpty(buckets);
        Assert.Equal(120, buckets.Sum(b => int.Parse(b.Groups["pairs"].Value)));
        foreach (Match b in buckets)
        {
            var members = rows.Where(r => r.GetProperty("chosen_tokens").GetInt32() - r.GetProperty("rejected_tokens").GetInt32() is var d
                && d >= D(b, "low") && d <= D(b, "high")).ToList();
            Assert.Equal(members.Count, int.Parse(b.Groups["pairs"].Value));
            Assert.Equal(members.Count(r => r.GetProperty("margin").GetDouble() > 0) / (double)members.Count, D(b, "acc"), 12);
        }
        Assert.Contains("<svg id=\"accuracy-by-length\"", page);
        // The most confidently wrong pairs: the most negative margins, each with both responses' heatmaps.
        var wrong = Regex.Matches(page, "<div class=\"wrong\" data-index=\"(?<index>\\d+)\" data-margin=\"(?<margin>[^\"]+)\">");
        var expected = rows.Where(r => r.GetProperty("margin").GetDouble() <= 0).OrderBy(r => r.GetProperty("margin").GetDouble()).Take(5)
            .Select(r => r.GetProperty("index").GetInt32()).ToList();
        Assert.Equal(expected, wrong.Select(m => int.Parse(m.Groups["index"].Value)));
        Assert.True(Regex.Matches(page, "<div class=\"item\" data-id=\"\\d+/(chosen|rejected)\"").Count == 2 * wrong.Count);
    }

    [Fact]
    public async Task LibraryCall_IteratesTheSameResultsAsTheCommand()
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "out.jsonl");
        var (code, _, stderr) = await CliProcess.Run("eval", "--data", DemoData, "--output", output, "--server", fixture.Address, "--limit", "40");
        Assert.True(code == 0, stderr);
        var expected = EvalTestData.ReadOutput(output);
        using var channel = new QServiceChannel(fixture.Address);
        var results = new List<PairResult>();
        await foreach (var r in new PreferenceEvaluator([channel]).EvaluateAsync(PreferenceDataset.ReadAsync(DemoData)))
            if (results.Count < 40) results.Add(r);
            else break;
        Assert.Equal(Enumerable.Range(0, 40), results.Select(r => (int)r.Index));
        for (int i = 0; i < 40; i++)
        {
            Assert.Equal(expected[i].GetProperty("chosen_reward").GetDouble(), results[i].ChosenReward, 1e-5);
            Assert.Equal(expected[i].GetProperty("margin").GetDouble(), results[i].Margin, 1e-5);
        }
        Assert.Equal(results.Count(r => r.Correct) / 40.0, EvaluationSummary.Of(results).Accuracy.Value);
    }
}
