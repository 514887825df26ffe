using System.Diagnostics;
using System.Text.Json;
using QService.Runtime.Scoring;

namespace QService.Cli.Tests;

/// <summary>The qservice command as a user runs it: a separate process, its output parsed.</summary>
public class CliTests
{
    [Fact]
    public async Task LogprobsJson_HasOneFewerLogprobThanTokens_AndMatchesTheRuntime()
    {
        string model = Fixtures.Path("hf-reference", "qwen2");
        var (code, stdout, stderr) = await CliProcess.Run("logprobs", "--model", model, "--ids", "5,17,200,3,99", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        int[] ids = doc.RootElement.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        float[] logprobs = doc.RootElement.GetProperty("logprobs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal([5, 17, 200, 3, 99], ids);
        using var runtime = CausalLanguageModel.Load(model, new ModelLoadOptions("cpu"));
        Assert.Equal(runtime.ScoreNextTokens([ids])[0].Logprobs, logprobs);
    }

    [Fact]
    public async Task LogprobsTable_ShowsTokenTextIdsAndLogprobs()
    {
        string demo = Fixtures.DemoPair("policy");
        var (code, stdout, stderr) = await CliProcess.Run("logprobs", "--model", demo, "--text",
            "Review of the phone: The battery is long.", "--device", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains("\" battery\"", stdout);
        Assert.Contains("<|endoftext|>", stdout); // the BOS the tokenizer adds
        Assert.Contains("sum ", stdout);
    }

    [Fact]
    public async Task TokenizeJson_GivesIdsAndCodePointOffsets()
    {
        string tokenizer = Fixtures.Path("tokenizers", "phi-3-mini");
        var (code, stdout, stderr) = await CliProcess.Run("tokenize", "--model", tokenizer, "--text", "Hello world", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal([15043, 3186], doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([[0, 5], [5, 11]], doc.RootElement.GetProperty("offsets").EnumerateArray()
            .Select(o => o.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray());
    }

    [Fact]
    public async Task BadInput_IsOneErrorLine_AndExitCode1()
    {
        var (code, _, stderr) = await CliProcess.Run("logprobs", "--model", "/no/such/model", "--ids", "1,2");
        Assert.Equal(1, code);
        Assert.StartsWith("error: /no/such/model: model folder not found", stderr);
        (code, _, stderr) = await CliProcess.Run("logprobs", "--model", Fixtures.Path("hf-reference", "gpt2"), "--ids", "1,x");
        Assert.Equal(1, code);
        Assert.Contains("'x' is not an integer token id", stderr);
    }
}
