using System.Diagnostics;
using Grpc.Core;
using QService.Engine;
using QService.Host.Telemetry;
using Microsoft.Extensions.Options;
using QService.Protos.V1;

namespace QService.Host.Grpc;

/// <summary>The gRPC face of the scoring engine: translates messages, maps errors, logs one line per request.</summary>
public sealed class QScorerService(ScoringEngine engine, HostMetrics metrics, IOptions<BatchingOptions> batching,
    IOptions<RequestLimits> limits, IHostApplicationLifetime lifetime, ILogger<QScorerService> logger) : QScorer.QScorerBase
{
    public override Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context) =>
        ScoreOne("Score", request, context);

    public override async Task ScoreStream(IAsyncStreamReader<ScoreRequest> requests, IServerStreamWriter<ScoreResponse> responses, ServerCallContext context)
    {
        // One response per request message, in order; an error ends the stream with that message's status.
        // On shutdown an idle stream is not waited for: it ends with UNAVAILABLE, so the client reconnects elsewhere.
        // A stream idle for StreamIdleSeconds, or past MaxStreamMessages, ends too: it cannot hold a connection forever.
        var idle = TimeSpan.FromSeconds(limits.Value.StreamIdleSeconds);
        using var idleTimer = new CancellationTokenSource(idle);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping, idleTimer.Token);
        int messages = 0;
        try
        {
            await foreach (var request in requests.ReadAllAsync(reading.Token))
            {
                if (++messages > limits.Value.MaxStreamMessages)
                    throw new RpcException(new Status(StatusCode.ResourceExhausted,
                        $"this stream has carried {limits.Value.MaxStreamMessages} messages, the limit (Limits:MaxStreamMessages); open a new stream"));
                idleTimer.CancelAfter(Timeout.InfiniteTimeSpan);
                await responses.WriteAsync(await ScoreOne("ScoreStream", request, context));
                idleTimer.CancelAfter(idle);
            }
        }
        catch (OperationCanceledException) when (!context.CancellationToken.IsCancellationRequested)
        {
            throw lifetime.ApplicationStopping.IsCancellationRequested
                ? new RpcException(new Status(StatusCode.Unavailable, "the service is shutting down; open a new stream on another instance"))
                : new RpcException(new Status(StatusCode.DeadlineExceeded,
                    $"the stream sent no message for {idle.TotalSeconds:0.#} s (Limits:StreamIdleSeconds); open a new one when needed"));
        }
    }

    public override Task<NextTokensResponse> NextTokens(NextTokensRequest request, ServerCallContext context) =>
        Observe("NextTokens", request.Items.Count, async () =>
        {
            double? beta = request.HasBeta ? request.Beta : null;
            var options = new NextTokenOptions(request.TopK, request.CandidateIds, (Engine.RankBy)(int)request.RankBy, beta);
            var choices = await engine.NextTokensAsync(request.Items.Select(ToInput).ToList(), options, context.CancellationToken, Caller(context));
            var response = new NextTokensResponse { Beta = (float)(beta ?? engine.Info.DefaultBeta) };
            foreach (var c in choices)
            {
                var m = new Protos.V1.NextTokenChoices
                {
                    Id = c.Id, PromptTokens = c.PromptTokens, ResponseTokens = c.ResponseTokens, Q = c.Q, Policy = c.Policy,
                };
                m.Candidates.Add(c.Candidates.Select(x => new Protos.V1.NextTokenCandidate
                {
                    Id = x.Id, Text = x.Text, PolicyLogprob = x.PolicyLogprob, ReferenceLogprob = x.ReferenceLogprob, Credit = x.Credit,
                }));
                response.Results.Add(m);
            }
            return (response, choices.Sum(c => c.PromptTokens + c.ResponseTokens));
        }, request.Items.Select(i => i.Policy));

    public override Task<SampleResponse> Sample(SampleRequest request, ServerCallContext context) =>
        Observe("Sample", 1, async () =>
        {
            var options = new Engine.Sampling.SampleOptions
            {
                N = request.N == 0 ? 1 : request.N,
                From = (Engine.Sampling.SampleFrom)(int)request.SampleFrom,
                Alpha = request.HasAlpha ? request.Alpha : null,
                Temperature = request.HasTemperature ? request.Temperature : 1,
                TopK = request.TopK,
                TopP = request.HasTopP ? request.TopP : 1,
                MaxNewTokens = request.MaxNewTokens,
                Stop = request.Stop,
                Seed = request.HasSeed ? request.Seed : null,
                Beta = request.HasBeta ? request.Beta : null,
                StepDelimiter = request.HasStepDelimiter ? request.StepDelimiter : null,
            };
            var result = await engine.SampleAsync(ToInput(request.Item ?? new ScoreItem()), options, context.CancellationToken, Caller(context));
            var response = new SampleResponse { Seed = result.Seed, Beta = (float)result.Beta, PrefixTokens = result.PrefixTokens };
            response.Samples.Add(result.Samples.Select(s => new Protos.V1.Sample
            {
                Scores = ToMessage(s.Scores), Text = s.Text, FinishReason = (Protos.V1.FinishReason)(int)s.Finish,
            }));
            return (response, result.PrefixTokens + result.Samples.Sum(s => s.Scores.TokenIds.Length));
        }, [request.Item?.Policy ?? ""]);

    public override Task<Protos.V1.ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context) =>
        Observe("GetModelInfo", 0, () =>
        {
            var i = engine.Info;
            var info = new Protos.V1.ModelInfo
            {
                PolicyModel = i.PolicyName, ReferenceModel = i.ReferenceName,
                PolicyArchitecture = i.PolicyArchitecture, ReferenceArchitecture = i.ReferenceArchitecture,
                VocabSize = i.VocabSize, MaxContext = i.MaxContext, Beta = (float)i.DefaultBeta, Dtype = i.Dtype, Device = i.Device,
                MaxBatchTokens = batching.Value.MaxBatchTokens, MaxItemsPerRequest = limits.Value.MaxItemsPerRequest,
                MaxTokensPerRequest = limits.Value.MaxTokensPerRequest, HasChatTemplate = engine.HasChatTemplate,
            };
            if (i.BosTokenId is int bos) info.BosTokenId = bos;
            if (i.EosTokenId is int eos) info.EosTokenId = eos;
            info.Policies.Add(i.Policies.Select(ToMessage));
            return Task.FromResult((info, 0));
        });

    /// <summary>Who is calling, for fair queueing: the API key's name when keys are on, else the connection.</summary>
    static string Caller(ServerCallContext context) =>
        context.GetHttpContext().Items.TryGetValue(Security.ApiKeys.CallerItem, out var key) && key is string name
            ? $"key:{name}"
            : $"connection:{context.GetHttpContext().Connection.Id}";

    Task<ScoreResponse> ScoreOne(string rpc, ScoreRequest request, ServerCallContext context) =>
        Observe(rpc, request.Items.Count, async () =>
        {
            double? beta = request.HasBeta ? request.Beta : null;
            var inputs = request.Items.Select(ToInput).ToList();
            var options = new ScoreOptions(beta, request.IncludeTokenText, request.HasStepDelimiter ? request.StepDelimiter : null, request.Policies,
                request.Reproducible);
            var scored = await engine.ScoreAsync(inputs, options, context.CancellationToken, Caller(context));
            var info = engine.Info;
            var response = new ScoreResponse { PolicyModel = info.PolicyName, ReferenceModel = info.ReferenceName, Beta = (float)(beta ?? info.DefaultBeta) };
            response.Results.AddRange(scored.Select(ToMessage));
            return (response, scored.Sum(s => s.PromptTokens + s.TokenIds.Length));
        }, request.Policies.Count > 0 ? request.Policies : request.Items.Select(i => i.Policy));

    static ScoreItemInput ToInput(ScoreItem item) => new()
    {
        Id = item.Id,
        // An empty prompt beside a response is an empty text prompt, unless messages are the prompt.
        Prompt = item.Prompt.Length > 0 || item.Response.Length > 0 && item.Messages.Count == 0 ? item.Prompt : null,
        Response = item.Prompt.Length > 0 || item.Response.Length > 0 ? item.Response : null,
        PromptTokenIds = item.PromptTokenIds,
        ResponseTokenIds = item.ResponseTokenIds,
        AppendEos = item.AppendEos,
        Policy = item.Policy,
        Messages = item.Messages.Count > 0 ? [.. item.Messages.Select(m => new ChatTurn(m.Role, m.Content))] : null,
    };

    static PolicyInfo ToMessage(ServedPolicy p)
    {
        var m = new PolicyInfo { Name = p.Name, Model = p.Model, Architecture = p.Architecture };
        if (p.Adapter is { } a)
        {
            m.Adapter = new AdapterInfo
            {
                PeftType = a.PeftType, Rank = a.Rank, LoraAlpha = (float)a.Alpha, UseRslora = a.UseRslora, ModuleCount = a.ModuleCount,
                Description = a.Description,
            };
            m.Adapter.TargetModules.Add(a.TargetModules);
            m.Adapter.ModulesToSave.Add(a.ModulesToSave);
        }
        return m;
    }

    static Protos.V1.ScoredItem ToMessage(ItemScores s)
    {
        var m = new Protos.V1.ScoredItem { Id = s.Id, Reward = s.Reward, PromptTokens = s.PromptTokens, Policy = s.Policy };
        m.TokenIds.Add(s.TokenIds);
        m.PolicyLogprobs.Add(s.PolicyLogprobs);
        m.ReferenceLogprobs.Add(s.ReferenceLogprobs);
        m.Credits.Add(s.Credits);
        m.QValues.Add(s.QValues);
        if (s.Tokens is { } tokens)
        {
            m.TokenTexts.Add(tokens.Select(t => t.Text));
            m.CharStarts.Add(tokens.Select(t => t.CharStart));
            m.CharEnds.Add(tokens.Select(t => t.CharEnd));
        }
        if (s.Steps is { } steps)
        {
            m.StepEnds.Add(steps.Ends);
            m.StepRewards.Add(steps.Rewards);
        }
        return m;
    }

    /// <summary>
    /// Times a call, records its metrics and writes the one log line per request (Warning when refused), with the policies it
    /// named ("default" when none).
    /// </summary>
    async Task<T> Observe<T>(string rpc, int items, Func<Task<(T Result, int Tokens)>> call, IEnumerable<string>? policies = null)
    {
        var sw = Stopwatch.StartNew();
        StatusCode status = StatusCode.OK;
        string detail = "";
        int tokens = 0;
        try
        {
            (T result, tokens) = await call();
            return result;
        }
        catch (Exception e)
        {
            var rpcError = GrpcErrors.ToRpc(e, logger);
            (status, detail) = (rpcError.StatusCode, rpcError.Status.Detail);
            throw rpcError;
        }
        finally
        {
            metrics.Record(rpc, status.ToString(), sw.Elapsed);
            var level = status is StatusCode.OK or StatusCode.Cancelled ? LogLevel.Information : LogLevel.Warning;
            string named = string.Join(",", (policies ?? []).Select(p => p.Length == 0 ? "default" : p).Distinct().Take(8));
            logger.Log(level, "{Rpc:l} {Status:l} items={Items} tokens={Tokens} policy={Policy:l} in {ElapsedMs:F1} ms {Detail:l}",
                rpc, status.ToString(), items, tokens, named.Length == 0 ? "default" : named, sw.Elapsed.TotalMilliseconds, detail);
        }
    }
}
