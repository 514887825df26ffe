using System.Net.Http.Json;
using System.Text.Json;
using Grpc.Core;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// Several policies against one reference over real sockets, on the HF reference pair: a server with the DPO policy
/// ("dpo") and the reference itself as a second policy ("sft") gives, per policy, what a single-policy server gives;
/// the reference runs once per item (its forward-token counter); bad names are INVALID_ARGUMENT naming the field.
/// </summary>
[Collection(nameof(PairServerCollection))]
public class SeveralPoliciesTests(PairServer single)
{
    static Task<ServerProcess> StartTwoPolicies() => ServerProcess.StartServingAsync(
        "--policy", $"dpo={PairServer.PolicyPath}", "--policy", $"sft={PairServer.ReferencePath}", "--reference", PairServer.ReferencePath,
        "--beta", "0.1", "--PrefixCache:Enabled=false", "--Limits:MaxTokensPerRequest=4000");

    static ScoreItem Item(JsonElement pair, string id) => new()
    {
        Id = id,
        PromptTokenIds = { pair.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()) },
        ResponseTokenIds = { pair.GetProperty("response_ids").EnumerateArray().Select(e => e.GetInt32()) },
    };

    [Fact]
    public async Task PerPolicyResults_EqualASinglePolicyServers_AndTheReferenceRunsOncePerItem()
    {
        await using var server = await StartTwoPolicies();
        var pairs = single.Expected.GetProperty("pairs").EnumerateArray().ToArray();
        var request = new ScoreRequest { Policies = { "sft", "dpo" } };
        request.Items.Add(pairs.Select((p, i) => Item(p, $"p{i}")));

        var both = await server.Channel.Scorer.ScoreAsync(request);
        var alone = await single.Server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { request.Items } });

        Assert.Equal(pairs.SelectMany((_, i) => new[] { $"p{i}/sft", $"p{i}/dpo" }), both.Results.Select(r => $"{r.Id}/{r.Policy}"));
        for (int i = 0; i < pairs.Length; i++)
        {
            var (sft, dpo, expected) = (both.Results[2 * i], both.Results[2 * i + 1], alone.Results[i]);
            Assert.Equal(expected.TokenIds, dpo.TokenIds);
            for (int t = 0; t < expected.TokenIds.Count; t++)
            {
                Assert.Equal(expected.PolicyLogprobs[t], dpo.PolicyLogprobs[t], 1e-5);
                Assert.Equal(expected.ReferenceLogprobs[t], dpo.ReferenceLogprobs[t], 1e-5);
                Assert.Equal(expected.ReferenceLogprobs[t], sft.PolicyLogprobs[t], 1e-5); // the reference as a policy
                Assert.Equal(0f, sft.Credits[t]);
            }
            Assert.Equal(expected.Reward, dpo.Reward, 1e-5);
        }

        var metrics = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics"));
        int tokens = request.Items.Sum(i => i.PromptTokenIds.Count + i.ResponseTokenIds.Count);
        Assert.Equal(tokens, metrics.Value("qservice_forward_tokens_total", ("model", "reference")));
        Assert.Equal(tokens, metrics.Value("qservice_forward_tokens_total", ("model", "policy"), ("policy", "dpo")));
        Assert.Equal(tokens, metrics.Value("qservice_forward_tokens_total", ("model", "policy"), ("policy", "sft")));
        Assert.Equal(1, metrics.Value("qservice_model_info", ("role", "policy"), ("policy", "sft")));

        var info = await server.Channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal(["dpo", "sft"], info.Policies.Select(p => p.Name));
        Assert.Equal("dpo", info.PolicyModel);
        Assert.All(info.Policies, p => Assert.Null(p.Adapter));

        // An item naming its policy, over the JSON routes.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.ApiPort}") };
        var body = new { items = new[] { new { promptTokenIds = request.Items[0].PromptTokenIds, responseTokenIds = request.Items[0].ResponseTokenIds,
            policy = "sft" } } };
        var json = JsonDocument.Parse(await (await http.PostAsJsonAsync("/v1/score", body)).Content.ReadAsStringAsync()).RootElement;
        var result = json.GetProperty("results")[0];
        Assert.Equal("sft", result.GetProperty("policy").GetString());
        Assert.Equal(both.Results[0].PolicyLogprobs[0], result.GetProperty("policyLogprobs")[0].GetSingle());
    }

    [Fact]
    public async Task UnknownPolicyNames_AreInvalidArgument_NamingTheField_AndTheServerStaysUp()
    {
        await using var server = await StartTwoPolicies();
        var named = new ScoreItem { PromptTokenIds = { 1, 2 }, ResponseTokenIds = { 3 }, Policy = "nca" };
        var plain = new ScoreItem { PromptTokenIds = { 1, 2 }, ResponseTokenIds = { 3 } };
        (ScoreRequest Request, string Expected)[] cases =
        [
            (new ScoreRequest { Items = { named } }, "items[0].policy is 'nca', which this server does not serve; the served policies are 'dpo', 'sft'"),
            (new ScoreRequest { Items = { plain }, Policies = { "dpo", "nca" } }, "policies[1] is 'nca', which this server does not serve"),
        ];
        foreach (var (request, expected) in cases)
        {
            var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Channel.Scorer.ScoreAsync(request));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains(expected, error.Status.Detail);
        }
        var sft = plain.Clone();
        sft.Policy = "sft";
        Assert.Equal("sft", Assert.Single((await server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { sft } })).Results).Policy);
    }
}
