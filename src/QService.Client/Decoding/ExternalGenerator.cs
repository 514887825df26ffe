using QService.Protos.V1;

namespace QService.Client.Decoding;

/// <summary>A continuation proposed by an outside generator: its token ids (in the pair's vocabulary), its text, and whether the response ends there.</summary>
public sealed record Proposal(int[] TokenIds, string Text, bool Ended);

/// <summary>
/// Continuations from any generator (e.g. a larger model served elsewhere: the weak-to-strong recipe), which
/// the service only scores, under the served policy named <paramref name="policy"/> (null: the default). The forward
/// tokens counted are the service's scoring ones; the generator's own cost is its business.
/// </summary>
public sealed class ExternalGenerator(QScorer.QScorerClient scorer,
    Func<string, IReadOnlyList<int>, int, int, ulong, CancellationToken, Task<IReadOnlyList<Proposal>>> generate, double? beta = null,
    string? policy = null) : IContinuationSource
{
    public async Task<ContinuationBatch> ContinueAsync(string prompt, IReadOnlyList<int> response, int n, int maxNewTokens, ulong seed,
        CancellationToken cancellation = default)
    {
        var proposals = await generate(prompt, response, n, maxNewTokens, seed, cancellation);
        var request = new ScoreRequest();
        if (beta is double b) request.Beta = (float)b;
        request.Items.Add(proposals.Select(p => Prefix.Item(prompt, [.. response, .. p.TokenIds], policy)));
        var reply = await scorer.ScoreAsync(request, cancellationToken: cancellation);
        var continuations = proposals.Select((p, i) =>
        {
            var credits = reply.Results[i].Credits.Skip(response.Count).ToArray();
            return new Continuation(p.TokenIds, p.Text, credits, credits.Sum(c => (double)c), p.Ended);
        }).ToList();
        return new ContinuationBatch(continuations, reply.Results.Sum(r => (long)r.PromptTokens + r.TokenIds.Count));
    }
}
