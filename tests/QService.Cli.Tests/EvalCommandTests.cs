using System.Text.Json;
using Parquet.Schema;
using QService.Protos.V1;

namespace QService.Cli.Tests;

/// <summary>`qservice eval` against the demo pair: rewards as Score gives them, the summary by hand, formats and column names.</summary>
[Collection(nameof(TwoPolicyServerCollection))]
public class EvalCommandTests(TwoPolicyServer fixture)
{
    async Task<(JsonElement Summary, List<JsonElement> Rows)> Eval(string data, string output, params string[] extra)
    {
        var (code, stdout, stderr) = await CliProcess.Run(["eval", "--data", data, "--output", output, "--server", fixture.Address, "--json", .. extra]);
        Assert.True(code == 0, stderr + stdout);
        return (JsonDocument.Parse(stdout).RootElement.Clone(), EvalTestData.ReadOutput(output));
    }

    async Task<ScoredItem[]> Score(IEnumerable<(string Prompt, string Response)> items)
    {
        var request = new ScoreRequest();
        foreach (var (p, r) in items) request.Items.Add(new ScoreItem { Prompt = p, Response = r, AppendEos = true });
        return [.. (await fixture.Server.Channel.Scorer.ScoreAsync(request)).Results];
    }

    static IEnumerable<IDictionary<string, object?>> Rows(string prompt = "prompt", string chosen = "chosen", string rejected = "rejected",
        string subset = "subset") => EvalTestData.Pairs.Select(p =>
        (IDictionary<string, object?>)new Dictionary<string, object?>
            { [prompt] = p.Prompt, [chosen] = p.Chosen, [rejected] = p.Rejected, [subset] = p.Subset });

    [Fact]
    public async Task Rewards_EqualScore_AndTheSummary_MatchesAHandComputation()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "pairs.jsonl");
        EvalTestData.WriteJsonLines(data, Rows());
        var (summary, rows) = await Eval(data, Path.Combine(dir.Path, "out.jsonl"));

        var chosen = await Score(EvalTestData.Pairs.Select(p => (p.Prompt, p.Chosen)));
        var rejected = await Score(EvalTestData.Pairs.Select(p => (p.Prompt, p.Rejected)));
        Assert.Equal(EvalTestData.Pairs.Length, rows.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal(i, rows[i].GetProperty("index").GetInt32());
            Assert.Equal(chosen[i].Reward, rows[i].GetProperty("chosen_reward").GetDouble(), 1e-5);
            Assert.Equal(rejected[i].Reward, rows[i].GetProperty("rejected_reward").GetDouble(), 1e-5);
            Assert.Equal(chosen[i].Reward - rejected[i].Reward, rows[i].GetProperty("margin").GetDouble(), 1e-5);
            Assert.Equal(chosen[i].TokenIds.Count, rows[i].GetProperty("chosen_tokens").GetInt32());
            Assert.Equal(rejected[i].TokenIds.Count, rows[i].GetProperty("rejected_tokens").GetInt32());
        }
        // By hand, from Score's own rewards: right when the chosen reward is strictly higher.
        var margins = chosen.Zip(rejected, (c, r) => c.Reward - r.Reward).ToArray();
        int right = margins.Count(m => m > 0);
        Assert.InRange(right, 1, 5); // the reversed pairs make some wrong: the interval below is not a trivial one
        Assert.Equal(6, summary.GetProperty("pairs").GetInt32());
        Assert.Equal(right / 6.0, summary.GetProperty("accuracy").GetDouble(), 12);
        // Wilson 95 %: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.96.
        double p = right / 6.0, z = 1.96, n = 6;
        double center = p + z * z / (2 * n), spread = z * Math.Sqrt(p * (1 - p) / n + z * z / (4 * n * n));
        var interval = summary.GetProperty("accuracy_interval").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal((center - spread) / (1 + z * z / n), interval[0], 4);
        Assert.Equal((center + spread) / (1 + z * z / n), interval[1], 4);
        Assert.Equal(margins.Average(), summary.GetProperty("mean_margin").GetDouble(), 1e-5);
        var sorted = margins.Order().ToArray();
        Assert.Equal((sorted[2] + sorted[3]) / 2, summary.GetProperty("median_margin").GetDouble(), 1e-5);
        Assert.Equal(0, summary.GetProperty("bad_rows").GetInt32());
        var subsets = summary.GetProperty("subsets");
        Assert.Equal(margins[4..].Count(m => m > 0) / 2.0, subsets.GetProperty("reversed").GetProperty("accuracy").GetDouble());
        Assert.Equal(2, subsets.GetProperty("reversed").GetProperty("pairs").GetInt32());
        // Reward per token (SimPO's mean credit) ranks by reward / tokens.
        int normalisedRight = chosen.Zip(rejected).Count(p => p.First.Reward / p.First.TokenIds.Count > p.Second.Reward / p.Second.TokenIds.Count);
        Assert.Equal(normalisedRight / 6.0, summary.GetProperty("normalised").GetProperty("accuracy").GetDouble(), 12);
        // Each length bucket counts its pairs once.
        Assert.Equal(6, summary.GetProperty("by_length").EnumerateArray().Sum(b => b.GetProperty("pairs").GetInt32()));
    }

    [Fact]
    public void WilsonInterval_ForFourOfSix_IsTheTextbookValue()
    {
        // Worked out on paper for 4 of 6 at z = 1.96: 0.3000 to 0.9032 (the normal interval would give 0.29 to 1.04).
        var (low, high) = QService.Client.Evaluation.Accuracy.Wilson(4, 6);
        Assert.Equal(0.3000, low, 3);
        Assert.Equal(0.9032, high, 3);
    }

    [Fact]
    public async Task StepDelimiter_ReportsStepRewardsThatSumToTheReward_AndStepAccuracy()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "pairs.jsonl");
        EvalTestData.WriteJsonLines(data, Rows());
        var (summary, rows) = await Eval(data, Path.Combine(dir.Path, "out.jsonl"), "--step-delimiter", ".", "--credits");
        foreach (var row in rows)
        {
            var steps = row.GetProperty("chosen_step_rewards").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(row.GetProperty("chosen_reward").GetDouble(), steps.Sum(), 1e-5);
            Assert.Equal(row.GetProperty("chosen_tokens").GetInt32(), row.GetProperty("chosen_credits").GetArrayLength());
        }
        int right = rows.Count(r => r.GetProperty("chosen_step_rewards").EnumerateArray().Min(e => e.GetDouble())
            > r.GetProperty("rejected_step_rewards").EnumerateArray().Min(e => e.GetDouble()));
        Assert.Equal(right / 6.0, summary.GetProperty("step_accuracy").GetDouble(), 12);
    }

    [Fact]
    public async Task Formats_WithColumnOverrides_JsonLinesAndParquet_GiveTheSameRewards()
    {
        using var dir = new TempFolder();
        string plain = Path.Combine(dir.Path, "plain.jsonl"), renamed = Path.Combine(dir.Path, "renamed.jsonl");
        string parquet = Path.Combine(dir.Path, "renamed.parquet");
        EvalTestData.WriteJsonLines(plain, Rows());
        EvalTestData.WriteJsonLines(renamed, Rows("question", "good", "bad", "category"));
        await EvalTestData.WriteParquetAsync(parquet, new ParquetSchema(new DataField<string>("question"), new DataField<string>("good"),
            new DataField<string>("bad"), new DataField<string>("category")), Rows("question", "good", "bad", "category"));
        string[] overrides = ["--prompt-column", "question", "--chosen-column", "good", "--rejected-column", "bad", "--subset-column", "category"];
        var (_, expected) = await Eval(plain, Path.Combine(dir.Path, "plain.out.jsonl"));
        var (s1, fromJson) = await Eval(renamed, Path.Combine(dir.Path, "renamed.out.jsonl"), overrides);
        var (s2, fromParquet) = await Eval(parquet, Path.Combine(dir.Path, "renamed.out.jsonl2"), overrides);
        foreach (var rows in new[] { fromJson, fromParquet })
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i].GetProperty("chosen_reward").GetDouble(), rows[i].GetProperty("chosen_reward").GetDouble(), 1e-5);
                Assert.Equal(expected[i].GetProperty("rejected_reward").GetDouble(), rows[i].GetProperty("rejected_reward").GetDouble(), 1e-5);
                Assert.Equal(EvalTestData.Pairs[i].Subset, rows[i].GetProperty("subset").GetString());
            }
        Assert.Equal(3, s2.GetProperty("subsets").EnumerateObject().Count());
    }

    [Fact]
    public async Task ImplicitPrompts_SplitAtTheCommonPrefix_AsTrlDoes_InJsonLinesAndParquet()
    {
        using var dir = new TempFolder();
        var rows = EvalTestData.Pairs.Select(p =>
            (IDictionary<string, object?>)new Dictionary<string, object?> { ["c"] = p.Prompt + p.Chosen, ["r"] = p.Prompt + p.Rejected }).ToList();
        string jsonl = Path.Combine(dir.Path, "implicit.jsonl"), parquet = Path.Combine(dir.Path, "implicit.parquet");
        EvalTestData.WriteJsonLines(jsonl, rows);
        await EvalTestData.WriteParquetAsync(parquet, new ParquetSchema(new DataField<string>("c"), new DataField<string>("r")), rows);
        // The prompt is the longest common prefix, less a trailing space (the responses keep their leading space).
        var splits = EvalTestData.Pairs.Select(p =>
        {
            string c = p.Prompt + p.Chosen, r = p.Prompt + p.Rejected;
            int n = 0;
            while (c[n] == r[n]) n++;
            if (c[n - 1] == ' ') n--;
            return (Prompt: c[..n], Chosen: c[n..], Rejected: r[n..]);
        }).ToList();
        Assert.Equal("Review of the phone: The", splits[0].Prompt);
        var chosen = await Score(splits.Select(s => (s.Prompt, s.Chosen)));
        var rejected = await Score(splits.Select(s => (s.Prompt, s.Rejected)));
        foreach (var file in new[] { jsonl, parquet })
        {
            var (_, output) = await Eval(file, file + ".out.jsonl", "--chosen-column", "c", "--rejected-column", "r");
            for (int i = 0; i < output.Count; i++)
            {
                Assert.Equal(chosen[i].Reward, output[i].GetProperty("chosen_reward").GetDouble(), 1e-5);
                Assert.Equal(rejected[i].Reward, output[i].GetProperty("rejected_reward").GetDouble(), 1e-5);
            }
        }
    }

    [Fact]
    public async Task TokenIdRows_InParquetAndJsonLines_EqualScoreOnTheSameIds()
    {
        using var dir = new TempFolder();
        string parquet = Path.Combine(dir.Path, "ids.parquet");
        var rows = new List<IDictionary<string, object?>>
        {
            new Dictionary<string, object?>
                { ["prompt"] = new List<int> { 1, 2, 3 }, ["chosen"] = new List<int> { 10, 11 }, ["rejected"] = new List<int> { 12 } },
        };
        await EvalTestData.WriteParquetAsync(parquet, new ParquetSchema(new ListField("prompt", new DataField<int>("element")),
            new ListField("chosen", new DataField<int>("element")), new ListField("rejected", new DataField<int>("element"))), rows);
        string jsonl = Path.Combine(dir.Path, "ids.jsonl");
        EvalTestData.WriteJsonLines(jsonl, rows);
        var item = new ScoreItem { PromptTokenIds = { 1, 2, 3 }, ResponseTokenIds = { 10, 11 }, AppendEos = true };
        var reply = await fixture.Server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { item } });
        foreach (var file in new[] { parquet, jsonl })
        {
            var (_, output) = await Eval(file, file + ".out.jsonl");
            Assert.Equal(reply.Results[0].Reward, output[0].GetProperty("chosen_reward").GetDouble(), 1e-5);
            Assert.Equal(3, output[0].GetProperty("prompt_tokens").GetInt32());
        }
    }

    [Fact]
    public async Task Conversations_WithoutAChatTemplate_StopWithAClearError()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "chat.jsonl");
        object Turn(string role, string content) => new Dictionary<string, string> { ["role"] = role, ["content"] = content };
        EvalTestData.WriteJsonLines(data, [new Dictionary<string, object?>
        {
            ["prompt"] = new[] { Turn("user", "Review the phone.") }, ["chosen"] = new[] { Turn("assistant", " The battery is long.") },
            ["rejected"] = new[] { Turn("assistant", " The delivery is long.") },
        }]);
        var (code, _, stderr) = await CliProcess.Run("eval", "--data", data, "--output", Path.Combine(dir.Path, "o.jsonl"), "--server", fixture.Address);
        Assert.Equal(1, code);
        Assert.Contains("row 0 is a conversation", stderr);
        Assert.Contains("chat template", stderr);
    }
}
