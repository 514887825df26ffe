using QService.Protos.V1;

namespace QService.Client.Decoding;

/// <summary>
/// How the service samples: from the policy, the reference or the guided mix (alpha), with the usual knobs. Policy names the served
/// policy (ModelInfo.Policies) that samples and scores; null: the server's default.
/// </summary>
public sealed record SamplingSettings(SampleFrom From = SampleFrom.Policy, double? Alpha = null, double Temperature = 1, int TopK = 0,
    double TopP = 1, string? Stop = null, double? Beta = null, string? Policy = null);

/// <summary>Continuations sampled by the service's Sample RPC: generated and scored in one call, the prompt computed once for all n.</summary>
public sealed class ServiceSampler(QScorer.QScorerClient scorer, SamplingSettings settings) : IContinuationSource
{
    public SamplingSettings Settings { get; } = settings;

    public async Task<ContinuationBatch> ContinueAsync(string prompt, IReadOnlyList<int> response, int n, int maxNewTokens, ulong seed,
        CancellationToken cancellation = default)
    {
        var request = new SampleRequest
        {
            Item = Prefix.Item(prompt, response, Settings.Policy), N = n, SampleFrom = Settings.From, Temperature = (float)Settings.Temperature,
            TopK = Settings.TopK, TopP = (float)Settings.TopP, MaxNewTokens = maxNewTokens, Seed = seed,
        };
        if (Settings.Alpha is double alpha) request.Alpha = (float)alpha;
        if (Settings.Stop is { } stop) request.Stop.Add(stop);
        if (Settings.Beta is double beta) request.Beta = (float)beta;
        var reply = await scorer.SampleAsync(request, cancellationToken: cancellation);
        var continuations = reply.Samples.Select(s => new Continuation([.. s.Scores.TokenIds], s.Text, [.. s.Scores.Credits], s.Scores.Reward,
            s.FinishReason is FinishReason.Eos or FinishReason.Context)).ToList();
        return new ContinuationBatch(continuations, reply.PrefixTokens + continuations.Sum(c => (long)c.TokenIds.Length));
    }
}

/// <summary>A prompt as text with its partial response as ids, as the service takes it, under a named policy (null: the default).</summary>
static class Prefix
{
    public static ScoreItem Item(string prompt, IReadOnlyList<int> response, string? policy)
    {
        var item = new ScoreItem { Prompt = prompt, Policy = policy ?? "" };
        item.ResponseTokenIds.Add(response);
        return item;
    }
}
