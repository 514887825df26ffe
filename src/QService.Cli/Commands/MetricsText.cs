using System.Globalization;

namespace QService.Cli.Commands;

/// <summary>Just enough of the Prometheus text format for the CLI's benchmarks: each metric's value, summed over its label sets.</summary>
static class MetricsText
{
    public static Dictionary<string, double> Parse(string text)
    {
        var values = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            int space = line.LastIndexOf(' ');
            if (space < 0) continue;
            string name = line[..space].Split('{')[0];
            if (double.TryParse(line[(space + 1)..], CultureInfo.InvariantCulture, out double v)) values[name] = values.GetValueOrDefault(name) + v;
        }
        return values;
    }
}
