using System.Net.Http.Json;
using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// ScoreRequest.reproducible over real sockets on the HuggingFace reference pair: the same request gets the same bits on a cold
/// server, on a warm one amid other clients' traffic that shares its prompts, and on a second server process; over JSON too.
/// </summary>
public class ReproducibleScoringTests
{
    static Task<ServerProcess> Start() =>
        ServerProcess.StartServingAsync("--policy", PairServer.PolicyPath, "--reference", PairServer.ReferencePath, "--beta", "0.1",
            "--threads", "1", "--max-queue-delay-ms", "5", "--PrefixCache:BlockSize=4");

    /// <summary>Pairs of responses after shared prompts, as `qservice eval` sends them.</summary>
    static ScoreRequest Pairs(int seed, bool reproducible)
    {
        var rng = new Random(seed);
        var request = new ScoreRequest { Reproducible = reproducible };
        for (int pair = 0; pair < 8; pair++)
        {
            int[] prompt = [.. Enumerable.Range(0, 5 + rng.Next(20)).Select(_ => rng.Next(3, 320))];
            for (int side = 0; side < 2; side++)
            {
                int[] response = [.. Enumerable.Range(0, 3 + rng.Next(20)).Select(_ => rng.Next(3, 320))];
                request.Items.Add(new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { response } });
            }
        }
        return request;
    }

    /// <summary>Every number of the reply, as bits.</summary>
    static string Bits(ScoreResponse reply) => string.Join(';', reply.Results.Select(r =>
        $"{BitConverter.DoubleToInt64Bits(r.Reward)}:" +
        string.Join(',', r.PolicyLogprobs.Concat(r.ReferenceLogprobs).Concat(r.Credits).Select(BitConverter.SingleToInt32Bits))));

    [Fact]
    public async Task TheSameReproducibleRequest_GetsTheSameBits_Cold_AmidTrafficSharingItsPrompts_AndOnAnotherServer()
    {
        var request = Pairs(seed: 7, reproducible: true);
        string cold;
        await using (var server = await Start())
        {
            cold = Bits(await server.Channel.Scorer.ScoreAsync(request));
            // Other clients score the same prompts with other responses (so the cache holds them) while the request runs again, four times.
            var traffic = Enumerable.Range(0, 6).Select(async k =>
            {
                for (int round = 0; round < 4; round++)
                {
                    var other = Pairs(seed: 100 + k * 10 + round, reproducible: false);
                    other.Items.Add(request.Items.Skip(k * 2).Take(2).Select(i => new ScoreItem(i) { ResponseTokenIds = { 5, 6 } }));
                    await server.Channel.Scorer.ScoreAsync(other);
                }
            }).ToList();
            var again = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => server.Channel.Scorer.ScoreAsync(request).ResponseAsync));
            await Task.WhenAll(traffic);
            Assert.All(again, reply => Assert.Equal(cold, Bits(reply)));

            // JSON takes it too, with the same numbers.
            using var json = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.ApiPort}") };
            var body = Google.Protobuf.JsonFormatter.Default.Format(request);
            Assert.Contains("\"reproducible\": true", body);
            var reply = await json.PostAsync("/v1/score", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            Assert.True(reply.IsSuccessStatusCode, await reply.Content.ReadAsStringAsync());
            var parsed = Google.Protobuf.JsonParser.Default.Parse<ScoreResponse>(await reply.Content.ReadAsStringAsync());
            Assert.Equal(cold, Bits(parsed));
        }
        await using (var other = await Start())
            Assert.Equal(cold, Bits(await other.Channel.Scorer.ScoreAsync(request)));
    }
}
