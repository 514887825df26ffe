using System.Text.Json;

namespace QService.Cli.Tests;

/// <summary>`qservice decode` as a user runs it, against the real server on the demo pair.</summary>
[Collection(nameof(DefaultServerCollection))]
public class DecodeCommandTests(DefaultServer fixture)
{
    string Address => $"http://127.0.0.1:{fixture.Server.GrpcPort}";

    [Theory]
    [InlineData("bon", "bon-4")]
    [InlineData("beam", "beam-w2-k4-l8")]
    [InlineData("guided", "guided-a2")]
    [InlineData("sample", "sample-policy")]
    public async Task Json_GivesTheChosenResponse_WithCreditsThatSumToItsReward(string strategy, string name)
    {
        var (code, stdout, stderr) = await CliProcess.Run("decode", "--server", Address, "--prompt", "Review of the camera:", "--strategy", strategy,
            "--seed", "4", "--max-tokens", "32", "--json");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(name, json.GetProperty("strategy").GetString());
        var credits = json.GetProperty("credits").EnumerateArray().Select(c => c.GetDouble()).ToArray();
        Assert.Equal(json.GetProperty("token_ids").GetArrayLength(), credits.Length);
        Assert.Equal(credits.Sum(), json.GetProperty("reward").GetDouble(), 1e-4);
        Assert.True(json.GetProperty("forward_tokens").GetInt64() >= credits.Length);
        Assert.False(string.IsNullOrEmpty(json.GetProperty("text").GetString()));
        // The same seed, the same response (the credits may differ in the last float digits: the second run reuses cached prefixes).
        var again = await CliProcess.Run("decode", "--server", Address, "--prompt", "Review of the camera:", "--strategy", strategy,
            "--seed", "4", "--max-tokens", "32", "--json");
        var second = JsonDocument.Parse(again.Stdout).RootElement;
        Assert.Equal(json.GetProperty("token_ids").ToString(), second.GetProperty("token_ids").ToString());
        Assert.Equal(json.GetProperty("text").GetString(), second.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Text_ShowsTheHeatmapAndQ_AndTheRejectedCandidates_AndHtmlWritesAPage()
    {
        string page = Path.Combine(Path.GetTempPath(), $"decode-{Guid.NewGuid():N}.html");
        var (code, stdout, stderr) = await CliProcess.Run("decode", "--server", Address, "--prompt", "Review of the kettle:", "--strategy", "bon", "--n", "3",
            "--seed", "2", "--show-rejected", "--html", page);
        Assert.True(code == 0, stderr);
        Assert.Contains("chosen: Q", stdout);
        Assert.Contains("rejected 2: Q", stdout);
        Assert.Contains("  Q ", stdout);
        Assert.Contains("data-id=\"rejected 1\"", File.ReadAllText(page));
        File.Delete(page);
    }

    [Fact]
    public async Task AnUnknownStrategy_IsOneLineOnStderr()
    {
        var (code, _, stderr) = await CliProcess.Run("decode", "--server", Address, "--prompt", "x", "--strategy", "greedy");
        Assert.Equal(1, code);
        Assert.Contains("--strategy is 'greedy'; use sample, bon, beam or guided", stderr);
    }
}
