using System.Diagnostics;
using System.Net;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using QService.Engine;
using QService.Protos.V1;
using QService.Runtime.Tokenization;

namespace QService.Host.Tests;

/// <summary>Text input, model info, health, reflection and the management port, on the bundled demo pair.</summary>
[Collection(nameof(DefaultServerCollection))]
public class ServiceSurfaceTests(DefaultServer fixture)
{
    readonly ServerProcess _server = fixture.Server;

    static string DemoPair => Fixtures.DemoPair();

    [Fact]
    public async Task StepRewards_SumToTheReward_AndStepsEndWhereTheDelimiterIs()
    {
        const string prompt = "Review of the phone:";
        const string response = " The battery is long. The fan is loud. The screen is excellent.";
        using var tokenizer = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        var ids = tokenizer.Encode(response, addSpecialTokens: false).Ids;
        var reply = await _server.Channel.Scorer.ScoreAsync(new ScoreRequest
        {
            StepDelimiter = ". ",
            IncludeTokenText = true,
            Items =
            {
                new ScoreItem { Id = "text", Prompt = prompt, Response = response, AppendEos = true },
                new ScoreItem { Id = "ids", PromptTokenIds = { tokenizer.Encode(prompt, addSpecialTokens: true).Ids },
                    ResponseTokenIds = { ids }, AppendEos = true },
            },
        });
        var text = reply.Results[0];
        // Three clauses: two ". " delimiters end two steps, the last step ends at the appended EOS.
        Assert.Equal(3, text.StepEnds.Count);
        Assert.Equal(text.TokenIds.Count - 1, text.StepEnds[^1]);
        // Each step's last token holds its delimiter's last character (the space before "The"; ASCII, so code points = chars).
        int[] delimiterLastChars = [response.IndexOf(". ", StringComparison.Ordinal) + 1, response.LastIndexOf(". ", StringComparison.Ordinal) + 1];
        for (int k = 0; k < 2; k++)
            Assert.InRange(delimiterLastChars[k], text.CharStarts[text.StepEnds[k]], text.CharEnds[text.StepEnds[k]] - 1);
        Assert.Equal(text.StepEnds.Count, text.StepRewards.Count);
        Assert.Equal(text.Reward, text.StepRewards.Sum(), 12);
        int start = 0;
        for (int s = 0; s < text.StepEnds.Count; s++)
        {
            double sum = 0;
            for (int t = start; t <= text.StepEnds[s]; t++) sum += text.Credits[t];
            Assert.Equal(sum, text.StepRewards[s], 6); // the float credits; step rewards are summed in double from the log-probs
            start = text.StepEnds[s] + 1;
        }
        // Token-id items get the same steps from the decoded text.
        Assert.Equal(text.StepEnds, reply.Results[1].StepEnds);
        Assert.Equal(text.StepRewards, reply.Results[1].StepRewards);
    }

    [Fact]
    public async Task TextItems_AreTokenisedLikeTraining_AndMatchTheEngineInProcess()
    {
        const string prompt = "Review of the phone:";
        const string response = " The battery is long. The fan is loud. Naïve UI 👍";
        var reply = await _server.Channel.Scorer.ScoreAsync(new ScoreRequest
        {
            IncludeTokenText = true,
            Items = { new ScoreItem { Id = "t", Prompt = prompt, Response = response, AppendEos = true } },
        });
        var item = reply.Results[0];

        using var tokenizer = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        var promptIds = tokenizer.Encode(prompt, addSpecialTokens: true).Ids;
        var responseEnc = tokenizer.Encode(response, addSpecialTokens: false);
        int eos = tokenizer.EosTokenId!.Value;
        Assert.Equal(promptIds.Length, item.PromptTokens);
        Assert.Equal([.. responseEnc.Ids, eos], item.TokenIds.ToArray());
        Assert.Equal(responseEnc.Offsets.Select(o => o.Start).Append(-1), item.CharStarts);
        Assert.Equal(responseEnc.Offsets.Select(o => o.End).Append(-1), item.CharEnds);
        Assert.Equal("<|endoftext|>", item.TokenTexts[^1]);
        Assert.Equal(" The", item.TokenTexts[0]);
        Assert.Equal(" battery", item.TokenTexts[1]);
        Assert.Equal(" battery", response[item.CharStarts[1]..item.CharEnds[1]]);

        // The same numbers from the engine in-process, on the same deterministic default pair.
        using var engine = new ScoringEngine(new ModelOptions { Device = "cpu" }, new BatchingOptions(), new RequestLimits(), DemoPair,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<ScoringEngine>.Instance);
        engine.Start();
        await engine.Ready;
        var local = (await engine.ScoreAsync([new ScoreItemInput { Prompt = prompt, Response = response, AppendEos = true }], new ScoreOptions(), default))[0];
        Assert.Equal(local.TokenIds, item.TokenIds.ToArray());
        for (int t = 0; t < local.Credits.Length; t++)
        {
            Assert.True(Math.Abs(local.PolicyLogprobs[t] - item.PolicyLogprobs[t]) <= 1e-5);
            Assert.True(Math.Abs(local.Credits[t] - item.Credits[t]) <= 1e-6);
        }
    }

    [Fact]
    public async Task GetModelInfo_DescribesThePair()
    {
        var info = await _server.Channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal("LlamaForCausalLM", info.PolicyArchitecture);
        using var tokenizer = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        Assert.Equal(tokenizer.VocabSize, info.VocabSize);
        Assert.Equal("policy", info.PolicyModel);
        Assert.Equal("reference", info.ReferenceModel);
        Assert.Equal(0.1f, info.Beta); // from models/demo/policy/qservice-pair.json
        Assert.Equal("float32", info.Dtype);
        Assert.Equal("cpu", info.Device, ignoreCase: true);
        Assert.Equal(tokenizer.EosTokenId, info.EosTokenId);
        Assert.Equal(tokenizer.BosTokenId, info.BosTokenId);
        Assert.True(info.MaxContext > 0 && info.MaxBatchTokens > 0 && info.MaxItemsPerRequest > 0);
    }

    [Fact]
    public async Task Health_IsServing_AndReflectionListsTheServices()
    {
        foreach (string service in new[] { "", "qservice.v1.QScorer" })
        {
            var reply = await _server.Channel.Health.CheckAsync(new HealthCheckRequest { Service = service });
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        }
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{_server.GrpcPort}");
        var reflection = new ServerReflection.ServerReflectionClient(channel);
        using var call = reflection.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToArray();
        Assert.Contains("qservice.v1.QScorer", names);
        Assert.Contains("grpc.health.v1.Health", names);
    }

    [Fact]
    public async Task ManagementPort_ServesOnlyHealthReadinessAndMetrics()
    {
        Assert.Equal("ok\n", await _server.Http.GetStringAsync("/healthz"));
        Assert.StartsWith("ready", await _server.Http.GetStringAsync("/readyz"));
        Assert.Equal(HttpStatusCode.NotFound, (await _server.Http.GetAsync("/")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _server.Http.GetAsync("/qservice.v1.QScorer/Score")).StatusCode);
    }

    [Fact]
    public async Task Metrics_PassPromtool_AndCarryTheDocumentedSeries()
    {
        await _server.Channel.Scorer.ScoreAsync(new ScoreRequest { Items = { new ScoreItem { Prompt = "a", Response = "b c" } } });
        await Assert.ThrowsAsync<RpcException>(async () => await _server.Channel.Scorer.ScoreAsync(new ScoreRequest()));
        string text = await _server.Http.GetStringAsync("/metrics");

        var psi = new ProcessStartInfo("promtool", "check metrics")
            { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var promtool = Process.Start(psi)
            ?? throw new InvalidOperationException("promtool not found: install Debian's prometheus package (tests/run.sh does)");
        await promtool.StandardInput.WriteAsync(text);
        promtool.StandardInput.Close();
        string problems = await promtool.StandardOutput.ReadToEndAsync() + await promtool.StandardError.ReadToEndAsync();
        await promtool.WaitForExitAsync();
        Assert.True(promtool.ExitCode == 0, $"promtool check metrics failed:\n{problems}");

        var metrics = PrometheusText.Parse(text);
        Assert.True(metrics.Value("qservice_requests_total", ("rpc", "Score"), ("status", "OK")) >= 1);
        Assert.True(metrics.Value("qservice_requests_total", ("rpc", "Score"), ("status", "InvalidArgument")) >= 1);
        Assert.True(metrics.Value("qservice_request_duration_seconds_count", ("rpc", "Score")) >= 2);
        Assert.True(metrics.Value("qservice_scored_tokens_total") >= 2);
        Assert.True(metrics.Value("qservice_forward_duration_seconds_count", ("model", "policy")) >= 1);
        Assert.True(metrics.Value("qservice_forward_duration_seconds_count", ("model", "reference")) >= 1);
        Assert.True(metrics.Has("qservice_queue_depth"));
        Assert.True(metrics.Has("qservice_batch_tokens_bucket"));
        Assert.Equal(1, metrics.Value("qservice_model_info", ("role", "policy"), ("architecture", "LlamaForCausalLM")));
    }
}
