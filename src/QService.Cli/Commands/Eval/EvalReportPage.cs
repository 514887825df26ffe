using System.Globalization;
using System.Net;
using System.Text;
using QService.Client.Evaluation;
using QService.Client.Rendering;

namespace QService.Cli.Commands.Eval;

/// <summary>
/// The evaluation report: one self-contained HTML page (inline CSS and SVG, no scripts): the summary table, a histogram
/// of margins, accuracy by response length and by length difference, and the most confidently wrong pairs with both
/// responses' credit heatmaps side by side. Each figure's bars carry their numbers as data attributes, so tests read them.
/// </summary>
static class EvalReportPage
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Render(string dataset, EvaluationSummary s, IReadOnlyList<PairResult> results, IReadOnlyList<ReportPair> wrong)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>QService evaluation</title>\n<style>")
            .Append(CreditHtmlPage.Styles).Append(".figs{display:flex;gap:2em;flex-wrap:wrap}figure{margin:0}figcaption{font-size:90%;color:#555}")
            .Append(".wrong{border-top:1px solid #ccc;margin-top:1.5em}td:first-child,th:first-child{text-align:left}</style></head><body>\n")
            .Append($"<h1>Preference evaluation</h1>\n<p>Dataset <code>{Esc(dataset)}</code>. A pair is right when the chosen response's implicit ")
            .Append("reward (the sum of its credits) is strictly above the rejected one's; intervals are 95 % Wilson score intervals.</p>\n");
        SummaryTable(html, s);
        html.Append("<div class=\"figs\">\n");
        Histogram(html, results.Where(r => !r.IsBad).Select(r => r.Margin).ToArray());
        AccuracyBars(html, "accuracy-by-length", "Accuracy by response length (pair mean, tokens)", s.ByLength);
        AccuracyBars(html, "accuracy-by-length-difference", "Accuracy by length difference (chosen − rejected tokens)", s.ByLengthDifference);
        html.Append("</div>\n");
        WrongPairs(html, wrong);
        html.Append("</body></html>\n");
        return html.ToString();
    }

    static void SummaryTable(StringBuilder html, EvaluationSummary s)
    {
        html.Append("<table class=\"summary\">\n<tr><th>measure</th><th>value</th></tr>\n");
        void Row(string key, string name, string value) => html.Append($"<tr data-key=\"{key}\"><td>{name}</td><td>{Esc(value)}</td></tr>\n");
        Row("pairs", "pairs scored", $"{s.Pairs} of {s.Rows} rows");
        Row("accuracy", "accuracy", EvalSummaryText.Interval(s.Accuracy));
        Row("mean_margin", "mean margin", Signed.Format(s.MeanMargin));
        Row("median_margin", "median margin", Signed.Format(s.MedianMargin));
        Row("normalised_accuracy", "accuracy of reward / tokens (SimPO mean credit)", EvalSummaryText.Interval(s.NormalisedAccuracy));
        if (s.StepAccuracy is Accuracy step) Row("step_accuracy", "step-level accuracy (lowest step)", EvalSummaryText.Interval(step));
        foreach (var (name, a) in s.Subsets) Row("subset", $"subset {Esc(name)}", EvalSummaryText.Interval(a));
        Row("bad_rows", "bad rows", s.BadRows.Count == 0 ? "none"
            : string.Join("; ", s.BadRows.Take(20).Select(b => $"row {b.Index}: {b.Error}")) + (s.BadRows.Count > 20 ? $"; {s.BadRows.Count - 20} more" : ""));
        html.Append("</table>\n");
    }

    const int W = 420, H = 220, Pad = 34;

    /// <summary>Margins in 20 equal-width bins; bins below zero (wrong) in red.</summary>
    static void Histogram(StringBuilder html, double[] margins)
    {
        html.Append("<figure><svg id=\"margin-histogram\" width=\"420\" height=\"220\" role=\"img\" aria-label=\"histogram of margins\">");
        if (margins.Length > 0)
        {
            const int bins = 20;
            double lo = Math.Min(0, margins.Min()), hi = Math.Max(0, margins.Max());
            if (hi - lo < 1e-9) hi = lo + 1;
            var counts = new int[bins];
            foreach (var m in margins) counts[Math.Min(bins - 1, (int)((m - lo) / (hi - lo) * bins))]++;
            int top = counts.Max();
            double bw = (W - 2.0 * Pad) / bins;
            for (int b = 0; b < bins; b++)
            {
                double from = lo + (hi - lo) * b / bins, to = lo + (hi - lo) * (b + 1) / bins, h = (H - 2.0 * Pad) * counts[b] / top;
                html.Append($"<rect class=\"bin\" data-low=\"{R(from)}\" data-high=\"{R(to)}\" data-count=\"{counts[b]}\" x=\"{F(Pad + b * bw)}\" ")
                    .Append($"y=\"{F(H - Pad - h)}\" width=\"{F(bw - 1)}\" height=\"{F(h)}\" fill=\"{(to <= 0 ? "#d33" : "#2a8")}\">")
                    .Append($"<title>{F(from)} to {F(to)}: {counts[b]}</title></rect>");
            }
            double zero = Pad + (W - 2.0 * Pad) * (0 - lo) / (hi - lo);
            html.Append($"<line x1=\"{F(zero)}\" x2=\"{F(zero)}\" y1=\"{Pad - 6}\" y2=\"{H - Pad}\" stroke=\"#333\" stroke-dasharray=\"3 3\"/>")
                .Append($"<text x=\"{Pad}\" y=\"{H - 8}\" font-size=\"11\">{F(lo)}</text>")
                .Append($"<text x=\"{W - Pad}\" y=\"{H - 8}\" font-size=\"11\" text-anchor=\"end\">{F(hi)}</text>")
                .Append($"<text x=\"{Pad}\" y=\"14\" font-size=\"11\">pairs per bin (max {top})</text>");
        }
        html.Append("</svg><figcaption>Margins (chosen − rejected reward); left of the dashed zero line the pair is wrong.</figcaption></figure>\n");
    }

    /// <summary>One bar per bucket, height = accuracy, with the Wilson interval as a whisker and the 50 % line.</summary>
    static void AccuracyBars(StringBuilder html, string id, string caption, IReadOnlyList<Bucket> buckets)
    {
        html.Append($"<figure><svg id=\"{id}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{Esc(caption)}\">");
        double Y(double a) => H - Pad - (H - 2.0 * Pad) * a;
        double bw = (W - 2.0 * Pad) / Math.Max(1, buckets.Count);
        for (int i = 0; i < buckets.Count; i++)
        {
            var b = buckets[i];
            var (low, high) = b.Accuracy.Interval;
            double x = Pad + i * bw, a = b.Accuracy.Value;
            html.Append($"<rect class=\"bucket\" data-low=\"{R(b.Low)}\" data-high=\"{R(b.High)}\" data-pairs=\"{b.Accuracy.Pairs}\" ")
                .Append($"data-accuracy=\"{R(a)}\" x=\"{F(x + 4)}\" y=\"{F(Y(a))}\" width=\"{F(bw - 8)}\" height=\"{F(Y(0) - Y(a))}\" fill=\"#4a7fc1\">")
                .Append($"<title>{b.Low:0.#} to {b.High:0.#}: {a:P1} of {b.Accuracy.Pairs}</title></rect>")
                .Append($"<line x1=\"{F(x + bw / 2)}\" x2=\"{F(x + bw / 2)}\" y1=\"{F(Y(low))}\" y2=\"{F(Y(high))}\" stroke=\"#222\"/>")
                .Append($"<text x=\"{F(x + bw / 2)}\" y=\"{H - 8}\" font-size=\"10\" text-anchor=\"middle\">{Range(b)}</text>");
        }
        html.Append($"<line x1=\"{Pad}\" x2=\"{W - Pad}\" y1=\"{F(Y(0.5))}\" y2=\"{F(Y(0.5))}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>")
            .Append($"<text x=\"{Pad}\" y=\"{F(Y(1) - 4)}\" font-size=\"11\">100 %</text><text x=\"{Pad}\" y=\"{F(Y(0.5) - 3)}\" font-size=\"11\">50 %</text>")
            .Append($"</svg><figcaption>{Esc(caption)}; whiskers: 95 % Wilson intervals.</figcaption></figure>\n");
    }

    static void WrongPairs(StringBuilder html, IReadOnlyList<ReportPair> wrong)
    {
        html.Append($"<h2>Most confidently wrong pairs</h2>\n");
        if (wrong.Count == 0) html.Append("<p>No pair is wrong.</p>\n");
        foreach (var p in wrong)
        {
            string prompt = p.Row.Chosen!.Messages.Count > 0 ? string.Join(" | ", p.Row.Chosen.Messages.Select(m => $"{m.Role}: {m.Content}"))
                : p.Row.Chosen.Prompt.Length > 0 ? p.Row.Chosen.Prompt : $"[{p.Row.Chosen.PromptTokenIds.Count} token ids]";
            html.Append($"<div class=\"wrong\" data-index=\"{p.Row.Index}\" data-margin=\"{R(p.Margin)}\">\n")
                .Append($"<h3>row {p.Row.Index}{(p.Row.Subset != null ? $" ({Esc(p.Row.Subset)})" : "")}: margin {Signed.Format(p.Margin)}</h3>\n")
                .Append($"<p>Prompt: <code>{Esc(prompt)}</code></p>\n")
                .Append(CreditHtmlPage.RowOf([p.Chosen, p.Rejected], item => item == p.Chosen ? "chosen" : "rejected"))
                .Append("</div>\n");
        }
    }

    static string Range(Bucket b) => b.Low == b.High ? $"{b.Low:0.#}" : $"{b.Low:0.#}–{b.High:0.#}";

    static string Esc(string s) => WebUtility.HtmlEncode(s);
    static string F(double v) => v.ToString("0.#", Inv);
    static string R(double v) => v.ToString("R", Inv);
}
