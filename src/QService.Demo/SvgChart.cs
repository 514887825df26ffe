using System.Globalization;
using System.Net;
using System.Text;

namespace QService.Demo;

/// <summary>A minimal SVG line chart (axes, zero line, legend) for the demo report's figures.</summary>
public static class SvgChart
{
    static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points, bool Dashed = false);

    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, int width = 640, int height = 320)
    {
        const int left = 60, right = 170, top = 30, bottom = 45;
        var all = series.SelectMany(s => s.Points).ToList();
        double minX = all.Min(p => p.X), maxX = all.Max(p => p.X), minY = Math.Min(0, all.Min(p => p.Y)), maxY = Math.Max(0, all.Max(p => p.Y));
        if (maxX - minX < 1e-12) maxX = minX + 1;
        if (maxY - minY < 1e-12) maxY = minY + 1;
        double X(double x) => left + (width - left - right) * (x - minX) / (maxX - minX);
        double Y(double y) => top + (height - top - bottom) * (maxY - y) / (maxY - minY);
        string N(double v) => v.ToString("0.##", Inv);

        var svg = new StringBuilder();
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" " +
            "font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        svg.Append($"<text x=\"{left}\" y=\"18\" font-size=\"14\">{Esc(title)}</text>\n");
        svg.Append($"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"black\"/>\n");
        svg.Append($"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"black\"/>\n");
        svg.Append($"<line x1=\"{left}\" y1=\"{N(Y(0))}\" x2=\"{width - right}\" y2=\"{N(Y(0))}\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>\n");
        for (int i = 0; i <= 4; i++)
        {
            double yv = minY + (maxY - minY) * i / 4, xv = minX + (maxX - minX) * i / 4;
            svg.Append($"<text x=\"{left - 6}\" y=\"{N(Y(yv) + 4)}\" text-anchor=\"end\">{N(yv)}</text>\n");
            svg.Append($"<text x=\"{N(X(xv))}\" y=\"{height - bottom + 16}\" text-anchor=\"middle\">{N(xv)}</text>\n");
        }
        svg.Append($"<text x=\"{(left + width - right) / 2}\" y=\"{height - 8}\" text-anchor=\"middle\">{Esc(xLabel)}</text>\n");
        svg.Append($"<text x=\"14\" y=\"{(top + height - bottom) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
            $"{(top + height - bottom) / 2})\">{Esc(yLabel)}</text>\n");
        for (int s = 0; s < series.Count; s++)
        {
            string color = Colors[s % Colors.Length];
            string points = string.Join(" ", series[s].Points.Select(p => $"{N(X(p.X))},{N(Y(p.Y))}"));
            svg.Append($"<polyline fill=\"none\" stroke=\"{color}\" " +
                $"stroke-width=\"2\"{(series[s].Dashed ? " stroke-dasharray=\"6 4\"" : "")} points=\"{points}\"/>\n");
            int ly = top + 10 + 18 * s;
            svg.Append($"<line x1=\"{width - right + 10}\" y1=\"{ly}\" x2=\"{width - right + 34}\" y2=\"{ly}\" stroke=\"{color}\" " +
                $"stroke-width=\"2\"{(series[s].Dashed ? " stroke-dasharray=\"6 4\"" : "")}/>\n");
            svg.Append($"<text x=\"{width - right + 40}\" y=\"{ly + 4}\">{Esc(series[s].Name)}</text>\n");
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    static string Esc(string s) => WebUtility.HtmlEncode(s);
}
