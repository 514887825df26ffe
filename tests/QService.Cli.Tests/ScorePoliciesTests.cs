using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using QService.Client.Rendering;
using QService.Protos.V1;

namespace QService.Cli.Tests;

/// <summary>
/// `qservice score --policy` against a real two-policy server: one --policy scores under it; two show each response under
/// both, side by side, in the text heatmap, the table and the HTML page, with the numbers the server gives for each policy.
/// </summary>
[Collection(nameof(TwoPolicyServerCollection))]
public class ScorePoliciesTests(TwoPolicyServer fixture)
{
    const string Prompt = "Review of the phone:";
    static readonly string[] Responses = [" The battery is long. The screen is excellent.", " The delivery is long. The screen is awful."];

    async Task<ScoreResponse> Expected(string[] policies, float? beta = null)
    {
        var request = new ScoreRequest { IncludeTokenText = true, Policies = { policies } };
        if (beta is float b) request.Beta = b;
        for (int i = 0; i < Responses.Length; i++)
            request.Items.Add(new ScoreItem { Id = $"response {i + 1}", Prompt = Prompt, Response = Responses[i], AppendEos = true });
        return await fixture.Server.Channel.Scorer.ScoreAsync(request);
    }

    Task<(int ExitCode, string Stdout, string Stderr)> Score(params string[] args) =>
        CliProcess.Run(["score", "--server", fixture.Address, "--prompt", Prompt, "--response", Responses[0], "--response", Responses[1], "--eos",
            .. args]);

    [Fact]
    public async Task OnePolicy_ScoresUnderIt_InTextAndJson()
    {
        var (code, stdout, stderr) = await Score("--policy", "sft", "--json");
        Assert.True(code == 0, stderr);
        var results = JsonDocument.Parse(stdout).RootElement.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(["sft", "sft"], results.Select(r => r.GetProperty("policy").GetString()));

        (code, stdout, stderr) = await Score("--policy", "nca");
        Assert.True(code == 0, stderr);
        var expected = await Expected(["nca"]);
        Assert.StartsWith("policy nca vs reference reference", stdout);
        Assert.Contains($"response 2: reward {Signed.Format(expected.Results[1].Reward)} over {expected.Results[1].TokenIds.Count} tokens", stdout);
        Assert.NotEqual(0, expected.Results[1].Reward); // nca is the trained policy, not the reference
    }

    [Fact]
    public async Task TwoPolicies_ShowEachTokensCreditUnderBoth_AlignedInColumns_WithBothRewards()
    {
        // beta 10 makes some credits 10 or more: wider cells under nca than under sft, which the alignment must pad.
        var (code, stdout, stderr) = await Score("--policy", "nca", "--policy", "sft", "--table", "--beta", "10");
        Assert.True(code == 0, stderr);
        var expected = await Expected(["nca", "sft"], 10);
        Assert.Contains(expected.Results, r => r.Credits.Any(c => Math.Abs(c) >= 10));
        Assert.StartsWith("policies nca, sft vs reference reference", stdout);
        var lines = stdout.Split('\n');
        for (int i = 0; i < Responses.Length; i++)
        {
            var (nca, sft) = (expected.Results[2 * i], expected.Results[2 * i + 1]);
            int title = Array.IndexOf(lines,
                $"response {i + 1}: reward nca {Signed.Format(nca.Reward)}, sft {Signed.Format(sft.Reward)} over {nca.TokenIds.Count} tokens");
            Assert.True(title >= 0, stdout);
            // Output is redirected, so no colours: each token is [text|credit], under nca on one line and sft on the next.
            var (ncaLine, sftLine) = (lines[title + 1], lines[title + 2]);
            Assert.StartsWith("  nca  [", ncaLine);
            Assert.StartsWith("  sft  [", sftLine);
            var ncaCells = Regex.Matches(ncaLine, @"\[(?<text>.*?)\|(?<credit>[+-]\d+\.\d{3})\]");
            var sftCells = Regex.Matches(sftLine, @"\[(?<text>.*?)\|(?<credit>[+-]\d+\.\d{3})\]");
            Assert.Equal(nca.TokenIds.Count, ncaCells.Count);
            Assert.Equal(nca.TokenIds.Count, sftCells.Count);
            for (int t = 0; t < nca.TokenIds.Count; t++)
            {
                Assert.Equal(nca.TokenTexts[t], ncaCells[t].Groups["text"].Value);
                Assert.Equal(Signed.Format(nca.Credits[t], 3), ncaCells[t].Groups["credit"].Value);
                Assert.Equal(Signed.Format(sft.Credits[t], 3), sftCells[t].Groups["credit"].Value);
                Assert.Equal(ncaCells[t].Index, sftCells[t].Index); // token t starts in the same column under both policies
            }
            Assert.StartsWith("  Q nca  ", lines[title + 3]);
            Assert.StartsWith("  Q sft  ", lines[title + 4]);
            // The table: the reference's log-probability once, then each policy's log pi, credit and Q.
            string row0 = lines.Skip(title).First(l => l.StartsWith("    0  "));
            Assert.Contains($"{nca.ReferenceLogprobs[0],10:F4} | {nca.PolicyLogprobs[0],9:F4} {Signed.Format(nca.Credits[0]),8} " +
                $"{Signed.Format(nca.QValues[0]),8} | {sft.PolicyLogprobs[0],9:F4} {Signed.Format(sft.Credits[0]),8}", row0);
        }
    }

    [Fact]
    public async Task TwoPolicies_Html_PutsEachResponsesPoliciesSideBySide_WithTheirNumbers()
    {
        string page = Path.Combine(Path.GetTempPath(), $"score-policies-{Guid.NewGuid():N}.html");
        var (code, stdout, stderr) = await Score("--policy", "sft", "--policy", "nca", "--html", page);
        Assert.True(code == 0, stderr);
        string html = File.ReadAllText(page);
        File.Delete(page);
        var expected = await Expected(["sft", "nca"]);
        var rows = Regex.Matches(html,
            "<div class=\"compare\" data-id=\"(?<id>[^\"]*)\">\n<h2>(?<title>[^<]*)</h2>\n<div class=\"row\">(?<body>.*?)</div>\n</div>\n",
            RegexOptions.Singleline);
        Assert.Equal(["response 1", "response 2"], rows.Select(r => r.Groups["id"].Value));
        for (int i = 0; i < rows.Count; i++)
        {
            var items = Regex.Matches(rows[i].Groups["body"].Value,
                "<div class=\"item\" data-id=\"[^\"]*\" data-reward=\"(?<reward>[^\"]*)\" data-policy=\"(?<policy>[^\"]*)\">(?<tokens>.*?)</svg>",
                RegexOptions.Singleline);
            Assert.Equal(["sft", "nca"], items.Select(m => m.Groups["policy"].Value));
            for (int p = 0; p < 2; p++)
            {
                var want = expected.Results[2 * i + p];
                Assert.Equal(want.Reward, double.Parse(items[p].Groups["reward"].Value, CultureInfo.InvariantCulture));
                var credits = Regex.Matches(items[p].Groups["tokens"].Value, "data-credit=\"(?<c>[^\"]+)\"")
                    .Select(m => float.Parse(m.Groups["c"].Value, CultureInfo.InvariantCulture));
                Assert.Equal(want.Credits, credits);
            }
            Assert.Contains($"reward sft {Signed.Format(expected.Results[2 * i].Reward)}, nca {Signed.Format(expected.Results[2 * i + 1].Reward)}",
                rows[i].Groups["title"].Value);
        }
        Assert.Contains("policies <b>sft</b>, <b>nca</b> vs reference", html);
    }

    [Fact]
    public async Task AnUnknownPolicy_IsTheServersInvalidArgument_OnOneLine()
    {
        var (code, stdout, stderr) = await Score("--policy", "nca", "--policy", "dpo");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: InvalidArgument: policies[1] is 'dpo', which this server does not serve; the served policies are 'nca', 'sft'",
            stderr);
    }
}
