using QService.Client;
using QService.Client.Evaluation;
using QService.Protos.V1;

namespace QService.Cli.Commands.Eval;

/// <summary>A pair shown in the report: its row, both responses scored with their token texts, and its margin.</summary>
sealed record ReportPair(PreferenceRow Row, ScoredItem Chosen, ScoredItem Rejected, double Margin);

static class EvalReportPairs
{
    public const int Shown = 5;

    /// <summary>
    /// The wrong pairs with the most negative margins (the model is most sure of the wrong answer there), read again from
    /// the dataset by index (so it works after --resume too) and scored once more with token texts for the heatmaps.
    /// </summary>
    public static async Task<List<ReportPair>> MostConfidentlyWrongAsync(QServiceChannel channel, EvalSettings settings, IReadOnlyList<PairResult> results,
        CancellationToken cancellation)
    {
        var worst = results.Where(r => !r.IsBad && !r.Correct).OrderBy(r => r.Margin).ThenBy(r => r.Index).Take(Shown).ToList();
        if (worst.Count == 0) return [];
        var wanted = worst.Select(r => r.Index).ToHashSet();
        var rows = new Dictionary<long, PreferenceRow>();
        long last = wanted.Max();
        await foreach (var row in PreferenceDataset.ReadAsync(settings.Data, settings.Columns, settings.AppendEos, cancellation: cancellation))
        {
            if (wanted.Contains(row.Index)) rows[row.Index] = row;
            if (row.Index >= last) break;
        }
        var request = new ScoreRequest { IncludeTokenText = true };
        if (settings.Options.Beta is float beta) request.Beta = beta;
        foreach (var r in worst)
        {
            var chosen = rows[r.Index].Chosen!.Clone();
            var rejected = rows[r.Index].Rejected!.Clone();
            if (settings.Options.Policy != null) chosen.Policy = rejected.Policy = settings.Options.Policy;
            request.Items.Add(chosen);
            request.Items.Add(rejected);
        }
        var reply = await channel.Scorer.ScoreAsync(request, deadline: DateTime.UtcNow.AddMinutes(5), cancellationToken: cancellation);
        return worst.Select((r, i) => new ReportPair(rows[r.Index], reply.Results[2 * i], reply.Results[2 * i + 1], r.Margin)).ToList();
    }
}
