using QService.Client;
using QService.Client.Rendering;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice score --policy A --policy B`: each response under each policy, one heatmap line per policy with token t in the same
/// column in every line (one colour scale for all), both Q curves, both rewards, and with --table the numbers side by side.
/// </summary>
static class PolicyComparisonDisplay
{
    public static void Print(IReadOnlyList<PolicyComparison> compared, bool table)
    {
        bool color = Display.UseColor;
        double scale = Display.Scale(compared.SelectMany(c => c.Results));
        int label = compared.SelectMany(c => c.Results).Max(r => r.Policy.Length);
        foreach (var item in compared)
        {
            Console.WriteLine();
            string rewards = string.Join(", ", item.Results.Select(r => $"{r.Policy} {Signed.Format(r.Reward)}"));
            Console.WriteLine($"{item.Id}: reward {rewards} over {item.Results[0].TokenIds.Count} tokens");
            var lines = ConsoleHeatmap.Aligned(item.Results, scale, color);
            for (int p = 0; p < lines.Length; p++) Console.WriteLine($"  {item.Results[p].Policy.PadRight(label)}  {lines[p]}");
            foreach (var r in item.Results)
                Console.WriteLine($"  Q {r.Policy.PadRight(label)}  {ConsoleHeatmap.Sparkline(r.QValues)}  " +
                    $"({Signed.Format(r.QValues.FirstOrDefault(), 3)} -> {Signed.Format(r.QValues.LastOrDefault(), 3)})");
            if (table) PrintTable(item);
        }
        if (!color) Console.WriteLine("\n(no terminal colours: each token is shown as [text|credit])");
    }

    /// <summary>Token, the reference's log-probability (one for all policies), then each policy's log-probability, credit and Q.</summary>
    static void PrintTable(PolicyComparison item)
    {
        const int group = 29;
        Row($"  {"",3}  {"",-18} {"",10} " + string.Concat(item.Results.Select(r => $"| {Display.Truncate(r.Policy, group - 2),-(group - 2)} ")));
        Row($"  {"#",3}  {"token",-18} {"log pi_ref",10} " + string.Concat(item.Results.Select(_ => $"| {"log pi",9} {"credit",8} {"Q",8} ")));
        var first = item.Results[0];
        for (int t = 0; t < first.TokenIds.Count; t++)
        {
            string token = t < first.TokenTexts.Count ? Display.Quote(first.TokenTexts[t]) : first.TokenIds[t].ToString();
            Row($"  {t,3}  {Display.Truncate(token, 18),-18} {first.ReferenceLogprobs[t],10:F4} " + string.Concat(item.Results.Select(r =>
                $"| {r.PolicyLogprobs[t],9:F4} {Signed.Format(r.Credits[t]),8} {Signed.Format(r.QValues[t]),8} ")));
        }
    }

    static void Row(string line) => Console.WriteLine(line.TrimEnd());
}
