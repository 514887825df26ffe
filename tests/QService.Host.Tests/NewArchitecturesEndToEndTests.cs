using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// Each 2026 architecture fixture served over real sockets (as policy and reference): Score matches transformers, a
/// cached extension equals it, NextTokens' candidates equal Score of the prefix plus each candidate, and Sample's
/// numbers equal Score of what it sampled, with samples long enough to run past every sliding window.
/// </summary>
public class NewArchitecturesEndToEndTests
{
    public static TheoryData<string> Models => new() { "qwen3-tied", "gemma2-softcap", "gemma3-text", "phi3-partial-rotary", "olmo2", "llama3-rope" };

    static ScoreItem Ids(IEnumerable<int> prompt, IEnumerable<int> response) => new() { PromptTokenIds = { prompt }, ResponseTokenIds = { response } };

    [Theory]
    [MemberData(nameof(Models))]
    public async Task ScoreCacheNextTokensAndSample_AgreeWithTransformersAndEachOther(string model)
    {
        string folder = Fixtures.Path("hf-reference-2026", model);
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "expected.json"))).RootElement;
        await using var server = await ServerProcess.StartServingAsync("--policy", folder, "--reference", folder, "--PrefixCache:BlockSize=4");
        var scorer = server.Channel.Scorer;
        int[] ids = [.. expected.GetProperty("input_ids")[2].EnumerateArray().Select(e => e.GetInt32())];
        float[] hf = [.. expected.GetProperty("next_token_logprobs")[2].EnumerateArray().Select(e => e.GetSingle())];

        // Score: prompt = the first token; a cached extension of the first 30 tokens.
        await scorer.ScoreAsync(new ScoreRequest { Items = { Ids(ids[..1], ids[1..30]) } });
        var full = (await scorer.ScoreAsync(new ScoreRequest { Items = { Ids(ids[..1], ids[1..]) } })).Results[0];
        for (int t = 0; t < hf.Length; t++) Assert.Equal(hf[t], full.PolicyLogprobs[t], 1e-4);

        // NextTokens after 40 tokens = Score of each candidate appended.
        var choices = (await scorer.NextTokensAsync(new NextTokensRequest { Items = { Ids(ids[..1], ids[1..40]) }, TopK = 3 })).Results[0];
        foreach (var candidate in choices.Candidates)
        {
            var scored = (await scorer.ScoreAsync(new ScoreRequest { Items = { Ids(ids[..1], [.. ids[1..40], candidate.Id]) } })).Results[0];
            Assert.Equal(scored.PolicyLogprobs[^1], candidate.PolicyLogprob, 1e-5);
        }

        // Sample 40 tokens after 8: Score of prompt + sample gives the sample's numbers.
        var sampled = await scorer.SampleAsync(new SampleRequest { Item = Ids(ids[..8], []), N = 3, MaxNewTokens = 40, Seed = 7 });
        foreach (var sample in sampled.Samples)
        {
            var tokens = sample.Scores.TokenIds;
            var scored = (await scorer.ScoreAsync(new ScoreRequest { Items = { Ids(ids[..8], tokens) } })).Results[0];
            for (int t = 0; t < tokens.Count; t++) Assert.Equal(scored.PolicyLogprobs[t], sample.Scores.PolicyLogprobs[t], 1e-5);
        }
    }
}
