using System.Diagnostics;
using Grpc.Core;
using QService.Client;
using QService.Client.Evaluation;

namespace QService.Cli.Commands.Eval;

/// <summary>One `qservice eval` run: resume point, scoring with progress and Ctrl-C, output, summary and report.</summary>
sealed class EvalRun(EvalSettings settings)
{
    public int Execute()
    {
        if (settings.Servers.Length == 0) throw new ArgumentException("--server: give at least one address");
        if (settings.Options.PairsPerRequest < 1 || settings.Options.RequestsPerServer < 1)
            throw new ArgumentException("--pairs-per-request and --requests-per-server must be >= 1");
        if (!File.Exists(settings.Data)) throw new FileNotFoundException($"--data: {settings.Data} does not exist");
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try { return RunAsync(cancel.Token).GetAwaiter().GetResult(); }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            Console.Error.WriteLine($"interrupted: {settings.Output} holds every row finished so far; run again with --resume to continue");
            return 130;
        }
        catch (EvaluationException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (RpcException e)
        {
            Console.Error.WriteLine($"error: {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }

    async Task<int> RunAsync(CancellationToken cancellation)
    {
        if (settings.CheckOnly) return await CheckAsync(cancellation);
        int requestRows = settings.Options.PairsPerRequest;
        var results = settings.Resume ? await EvalOutput.ReadExistingAsync(settings.Output, requestRows, cancellation) : [];
        long total = await PreferenceDataset.CountRowsAsync(settings.Data, cancellation);
        if (settings.Limit is long limit) total = Math.Min(total, limit);
        if (results.Count > total)
            throw new InvalidOperationException($"{settings.Output} holds {results.Count} rows, more than the {total} to evaluate: not this dataset's output");
        if (results.Count > 0) Console.Error.WriteLine($"resuming after {results.Count} rows of {total}");
        var channels = settings.Servers.Select(s => new QServiceChannel(s)).ToList();
        long tokens = 0, scored = 0;
        try
        {
            await EvalServers.CheckAsync(channels, settings.Servers, settings.AppendEos, cancellation);
            var clock = Stopwatch.StartNew();
            var rows = PreferenceDataset.ReadAsync(settings.Data, settings.Columns, settings.AppendEos, results.Count, cancellation);
            var evaluator = new PreferenceEvaluator(channels, settings.Options);
            await using (var output = EvalOutput.Create(settings.Output, settings.Resume, requestRows))
            using (var progress = new EvalProgress(total, results.Count, !Console.IsErrorRedirected))
            {
                await foreach (var result in evaluator.EvaluateAsync(Limited(rows, total - results.Count), cancellation))
                {
                    await output.WriteAsync(result, cancellation);
                    // Keep only what the summary needs: the rows and credits could be large.
                    results.Add(result with { Row = null, ChosenCredits = null, RejectedCredits = null });
                    tokens += result.IsBad ? 0 : result.PairTokens;
                    scored++;
                    progress.Advance();
                }
                output.MarkComplete();
            }
            double seconds = clock.Elapsed.TotalSeconds;
            var summary = EvaluationSummary.Of(results);
            var speed = new EvalSpeed(scored, tokens, seconds);
            if (settings.Json) Console.WriteLine(EvalSummaryText.Json(summary, speed));
            else EvalSummaryText.Print(summary, speed);
            if (settings.Html != null)
            {
                var wrong = await EvalReportPairs.MostConfidentlyWrongAsync(channels[0], settings, results, cancellation);
                File.WriteAllText(settings.Html, EvalReportPage.Render(settings.Data, summary, results, wrong));
                if (!settings.Json) Console.WriteLine($"wrote {settings.Html}");
            }
            return settings.FailOnBadRows && summary.BadRows.Count > 0 ? 2 : 0;
        }
        finally { foreach (var c in channels) c.Dispose(); }
    }

    /// <summary>--check-only: every row read and parsed as for scoring (streamed, as a run reads it), nothing sent.</summary>
    async Task<int> CheckAsync(CancellationToken cancellation)
    {
        long rows = 0, badRows = 0;
        var bad = new List<PreferenceRow>();
        await foreach (var row in PreferenceDataset.ReadAsync(settings.Data, settings.Columns, settings.AppendEos, cancellation: cancellation))
        {
            rows++;
            if (row.IsBad && badRows++ < 1000) bad.Add(row);
        }
        Console.WriteLine($"{rows} rows, {badRows} bad{(badRows > bad.Count ? $" (the first {bad.Count} listed)" : "")}");
        foreach (var row in bad) Console.WriteLine($"  row {row.Index}: {row.Error}");
        return 0;
    }

    static async IAsyncEnumerable<PreferenceRow> Limited(IAsyncEnumerable<PreferenceRow> rows, long count)
    {
        if (count <= 0) yield break;
        long n = 0;
        await foreach (var row in rows)
        {
            yield return row;
            if (++n >= count) yield break;
        }
    }
}

/// <summary>This run's pace: rows finished, tokens through both models (counted as `qservice bench` counts them) and seconds.</summary>
sealed record EvalSpeed(long Rows, long PairTokens, double Seconds)
{
    public double RowsPerSecond => Rows / Math.Max(1e-9, Seconds);
    public double PairTokensPerSecond => PairTokens / Math.Max(1e-9, Seconds);
}
