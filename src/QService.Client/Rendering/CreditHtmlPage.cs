using System.Globalization;
using System.Net;
using System.Text;
using QService.Protos.V1;

namespace QService.Client.Rendering;

/// <summary>
/// A self-contained HTML page (no scripts, no external files) showing scored responses side by side: each
/// token shaded by its credit (green positive, red negative, hover for the numbers) and an SVG plot of Q
/// over the tokens. Every token span carries its numbers as data attributes, so the page can be checked. A response
/// scored under several policies (ScoreRequest.Policies) shows each response in a row of its own, its policies side by side.
/// </summary>
public static class CreditHtmlPage
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <param name="policies">How many policies each item was scored under (ScoreRequest.Policies.Count; 1 when it named none).</param>
    public static string Render(string prompt, ScoreResponse response, int policies = 1)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>QService credits</title>\n<style>")
            .Append(Styles).Append("</style></head><body>\n");
        var names = response.PolicyNames();
        string policyNames = string.Join(", ", names.Select(n => $"<b>{Esc(n)}</b>"));
        html.Append($"<h1>Token credits</h1>\n<p>{(names.Count > 1 ? "policies" : "policy")} {policyNames} vs reference " +
            $"<b>{Esc(response.ReferenceModel)}</b>, beta {F(response.Beta)}. ")
            .Append("credit = beta·(log π − log π<sub>ref</sub>); Q = running sum of credits; reward = Q at the last token.</p>\n");
        html.Append($"<p>Prompt: <code>{Esc(prompt)}</code></p>\n");
        // One colour scale for the whole page, so that shades compare across responses and policies.
        double scale = Math.Max(1e-6, response.Results.SelectMany(r => r.Credits).Select(c => Math.Abs((double)c)).DefaultIfEmpty(0).Max());
        if (policies == 1) AppendRow(html, response.Results, "h2", item => item.Id, scale);
        else
            foreach (var compared in response.ByItem(policies))
            {
                string rewards = string.Join(", ", compared.Results.Select(r => $"{Esc(r.Policy)} {Signed.Format(r.Reward)}"));
                html.Append($"<div class=\"compare\" data-id=\"{Esc(compared.Id)}\">\n<h2>{Esc(compared.Id)}: reward {rewards}</h2>\n");
                AppendRow(html, compared.Results, "h3", item => item.Policy, scale);
                html.Append("</div>\n");
            }
        html.Append("</body></html>\n");
        return html.ToString();
    }

    /// <summary>The page's CSS, for pages that embed <see cref="RowOf"/>.</summary>
    public const string Styles = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}" +
        ".row{display:flex;gap:2em;flex-wrap:wrap}.item{flex:1;min-width:22em;border:1px solid #ddd;border-radius:6px;padding:1em}" +
        ".tokens{font-family:ui-monospace,monospace;line-height:2;white-space:pre-wrap}.tok{border-radius:3px;padding:1px 0}" +
        "table{border-collapse:collapse;font-size:90%}td,th{padding:2px 6px;text-align:right}.compare{margin-bottom:2em}";

    /// <summary>Scored responses side by side (heatmap and Q plot each) on one colour scale, as a fragment for another page.</summary>
    public static string RowOf(IReadOnlyList<ScoredItem> items, Func<ScoredItem, string> title)
    {
        var html = new StringBuilder();
        double scale = Math.Max(1e-6, items.SelectMany(r => r.Credits).Select(c => Math.Abs((double)c)).DefaultIfEmpty(0).Max());
        AppendRow(html, items, "h3", title, scale);
        return html.ToString();
    }

    /// <param name="title">An item's title: its id, or its policy under a comparison's heading.</param>
    static void AppendRow(StringBuilder html, IEnumerable<ScoredItem> items, string headingTag, Func<ScoredItem, string> title, double scale)
    {
        html.Append("<div class=\"row\">\n");
        foreach (var item in items) AppendItem(html, item, headingTag, title(item), scale);
        html.Append("</div>\n");
    }

    static void AppendItem(StringBuilder html, ScoredItem item, string headingTag, string title, double scale)
    {
        html.Append($"<div class=\"item\" data-id=\"{Esc(item.Id)}\" data-reward=\"{R(item.Reward)}\" data-policy=\"{Esc(item.Policy)}\">\n" +
            $"<{headingTag}>{Esc(title)}: reward {Signed.Format(item.Reward)}</{headingTag}>\n<div class=\"tokens\">");
        for (int t = 0; t < item.TokenIds.Count; t++)
        {
            string text = t < item.TokenTexts.Count ? item.TokenTexts[t] : $"[{item.TokenIds[t]}]";
            double c = item.Credits[t];
            html.Append($"<span class=\"tok\" data-index=\"{t}\" data-token-id=\"{item.TokenIds[t]}\" data-credit=\"{R(c)}\" data-q=\"{R(item.QValues[t])}\" ")
                .Append($"data-policy-logprob=\"{R(item.PolicyLogprobs[t])}\" data-reference-logprob=\"{R(item.ReferenceLogprobs[t])}\" ")
                .Append($"style=\"background:{Shade(c, scale)}\" title=\"credit {F(c)}, Q {F(item.QValues[t])}, log π {F(item.PolicyLogprobs[t])}, " +
                    $"log π_ref {F(item.ReferenceLogprobs[t])}\">")
                .Append(Esc(text)).Append("</span>");
        }
        html.Append("</div>\n");
        html.Append(QPlot(item));
        html.Append("</div>\n");
    }

    /// <summary>Green for positive credit, red for negative, stronger with magnitude (relative to the page's largest).</summary>
    static string Shade(double credit, double scale)
    {
        double a = Math.Min(1, Math.Abs(credit) / scale) * 0.75;
        return credit >= 0 ? $"rgba(0,160,60,{a.ToString("F3", Inv)})" : $"rgba(220,30,30,{a.ToString("F3", Inv)})";
    }

    /// <summary>Q over the tokens as an SVG polyline, with the zero line.</summary>
    static string QPlot(ScoredItem item)
    {
        const int w = 360, h = 120, pad = 20;
        int n = item.QValues.Count;
        double min = Math.Min(0, item.QValues.DefaultIfEmpty(0).Min()), max = Math.Max(0, item.QValues.DefaultIfEmpty(0).Max());
        if (max - min < 1e-9) { max += 1e-3; min -= 1e-3; }
        double X(int t) => pad + (n <= 1 ? 0 : (w - 2.0 * pad) * t / (n - 1));
        double Y(double q) => pad + (h - 2.0 * pad) * (max - q) / (max - min);
        var points = string.Join(" ", item.QValues.Select((q, t) => $"{X(t).ToString("F1", Inv)},{Y(q).ToString("F1", Inv)}"));
        return $"<svg class=\"q-plot\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Q over tokens\">" +
               $"<line x1=\"{pad}\" x2=\"{w - pad}\" y1=\"{Y(0).ToString("F1", Inv)}\" y2=\"{Y(0).ToString("F1", Inv)}\" " +
               "stroke=\"#999\" stroke-dasharray=\"4 3\"/>" +
               $"<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"{points}\"/>" +
               $"<text x=\"{pad}\" y=\"12\" font-size=\"11\">Q (max {F(max)}, min {F(min)})</text></svg>\n";
    }

    static string Esc(string s) => WebUtility.HtmlEncode(s);
    static string F(double v) => v.ToString("0.0000", Inv);
    /// <summary>Round-trip formatting, so a reader of the page gets the exact numbers back.</summary>
    static string R(double v) => v.ToString("R", Inv);
    static string R(float v) => v.ToString("R", Inv);
}
