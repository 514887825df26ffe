using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// A policy with Phi-3 longrope (hf-reference-2026/phi3-longrope: short factors up to 32 tokens, long ones past it) against a plain-RoPE
/// Phi3 reference, over real sockets: a response growing across the switch through the prefix cache gets what a server without the
/// cache gives, and a sample that crosses it while being generated reports Score's numbers.
/// </summary>
public class LongRopeEndToEndTests
{
    static Task<ServerProcess> Start(params string[] extra) =>
        ServerProcess.StartServingAsync([
            "--policy", Fixtures.Path("hf-reference-2026", "phi3-longrope"), "--reference", Fixtures.Path("hf-reference-2026", "phi3-partial-rotary"),
            "--beta", "0.1", "--threads", "1", "--PrefixCache:BlockSize=4", "--max-queue-delay-ms", "5", .. extra]);

    static readonly int[] Prompt = [.. Enumerable.Range(0, 12).Select(i => 3 + 7 * i)];

    static async Task<ScoredItem> Score(ServerProcess server, IEnumerable<int> response) =>
        (await server.Channel.Scorer.ScoreAsync(new ScoreRequest
        {
            Items = { new ScoreItem { PromptTokenIds = { Prompt }, ResponseTokenIds = { response } } },
        })).Results[0];

    static void AssertSame(IList<float> expected, IList<float> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int t = 0; t < expected.Count; t++) Assert.True(Math.Abs(expected[t] - actual[t]) <= 1e-5, $"{what}[{t}]: {actual[t]} vs {expected[t]}");
    }

    [Fact]
    public async Task AResponseGrowingAcrossTheSwitch_AndASampleCrossingIt_GetScoresNumbers()
    {
        await using var off = await Start("--PrefixCache:Enabled=false");
        await using var on = await Start();
        // 12 + 4..40 tokens: the calls before 33 tokens cache blocks under the short factors, those after must not continue them.
        var response = new List<int>();
        foreach (int grow in new[] { 4, 8, 6, 3, 7, 5, 7 })
        {
            response.AddRange(Enumerable.Range(0, grow).Select(i => 5 + (response.Count * 13 + i) % 300));
            var (expected, cached) = (await Score(off, response), await Score(on, response));
            AssertSame(expected.PolicyLogprobs, cached.PolicyLogprobs, $"{Prompt.Length + response.Count} tokens: policy");
            AssertSame(expected.ReferenceLogprobs, cached.ReferenceLogprobs, $"{Prompt.Length + response.Count} tokens: reference");
        }
        Assert.True(Prompt.Length + response.Count > 40);

        foreach (var server in new[] { on, off })
        {
            var reply = await server.Channel.Scorer.SampleAsync(new SampleRequest
            {
                Item = new ScoreItem { PromptTokenIds = { Prompt }, ResponseTokenIds = { response[..10] } }, N = 3, MaxNewTokens = 20, Seed = 9,
            });
            Assert.True(reply.PrefixTokens < 32);
            Assert.Contains(reply.Samples, s => reply.PrefixTokens + s.Scores.TokenIds.Count > 33); // unless EOS came first
            foreach (var sample in reply.Samples)
            {
                var scored = await Score(off, [.. response[..10], .. sample.Scores.TokenIds]);
                AssertSame([.. scored.PolicyLogprobs.Skip(10)], sample.Scores.PolicyLogprobs, "sampled policy");
                AssertSame([.. scored.ReferenceLogprobs.Skip(10)], sample.Scores.ReferenceLogprobs, "sampled reference");
            }
        }
    }
}
