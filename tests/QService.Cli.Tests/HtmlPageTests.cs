using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using QService.Client.Rendering;
using QService.Protos.V1;

namespace QService.Cli.Tests;

/// <summary>The HTML page written by `qservice score --html` shows exactly the tokens and numbers of the Score response.</summary>
[Collection(nameof(DefaultServerCollection))]
public class HtmlPageTests(DefaultServer fixture)
{
    [Fact]
    public async Task Page_TokenSpansAndNumbers_MatchTheScoreResponse()
    {
        const string prompt = "Review of the laptop:";
        var reply = await fixture.Server.Channel.Scorer.ScoreAsync(new ScoreRequest
        {
            IncludeTokenText = true,
            Items =
            {
                new ScoreItem { Id = "good", Prompt = prompt, Response = " The battery is long. The build is sturdy & <solid>.", AppendEos = true },
                new ScoreItem { Id = "bad", Prompt = prompt, Response = " The delivery is long. The fan is loud.", AppendEos = true },
            },
        });
        string html = CreditHtmlPage.Render(prompt, reply);

        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("<solid>", html); // text is escaped
        var items = Regex.Matches(html,
            "<div class=\"item\" data-id=\"(?<id>[^\"]*)\" data-reward=\"(?<reward>[^\"]*)\" data-policy=\"policy\">(?<body>.*?)</svg>",
            RegexOptions.Singleline);
        Assert.Equal(reply.Results.Count, items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var expected = reply.Results[i];
            Assert.Equal(expected.Id, items[i].Groups["id"].Value);
            Assert.Equal(expected.Reward, double.Parse(items[i].Groups["reward"].Value, CultureInfo.InvariantCulture));
            var spans = Regex.Matches(items[i].Groups["body"].Value,
                "<span class=\"tok\" data-index=\"(?<i>\\d+)\" data-token-id=\"(?<id>\\d+)\" data-credit=\"(?<c>[^\"]+)\" data-q=\"(?<q>[^\"]+)\" " +
                "data-policy-logprob=\"(?<p>[^\"]+)\" data-reference-logprob=\"(?<r>[^\"]+)\" style=\"[^\"]*\" title=\"[^\"]*\">(?<text>.*?)</span>");
            Assert.Equal(expected.TokenIds.Count, spans.Count);
            for (int t = 0; t < spans.Count; t++)
            {
                var g = spans[t].Groups;
                Assert.Equal(t, int.Parse(g["i"].Value));
                Assert.Equal(expected.TokenIds[t], int.Parse(g["id"].Value));
                Assert.Equal(expected.TokenTexts[t], WebUtility.HtmlDecode(g["text"].Value));
                Assert.Equal(expected.Credits[t], float.Parse(g["c"].Value, CultureInfo.InvariantCulture));
                Assert.Equal(expected.QValues[t], float.Parse(g["q"].Value, CultureInfo.InvariantCulture));
                Assert.Equal(expected.PolicyLogprobs[t], float.Parse(g["p"].Value, CultureInfo.InvariantCulture));
                Assert.Equal(expected.ReferenceLogprobs[t], float.Parse(g["r"].Value, CultureInfo.InvariantCulture));
                // Shaded by the sign of the credit.
                Assert.Contains(expected.Credits[t] >= 0 ? "rgba(0,160,60," : "rgba(220,30,30,", spans[t].Value);
            }
            // The plot has one point per token.
            var points = Regex.Match(items[i].Groups["body"].Value, "<polyline[^>]*points=\"(?<pts>[^\"]*)\"").Groups["pts"].Value;
            Assert.Equal(expected.QValues.Count, points.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        }
    }
}
