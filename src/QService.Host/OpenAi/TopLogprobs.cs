using QService.Engine;
using QService.Engine.Sampling;

namespace QService.Host.OpenAi;

/// <summary>The most likely next tokens at one position under the requested model, and the guided mix's log normaliser there.</summary>
public sealed record PositionTop(int[] Ids, double[] Logprobs, double GuidedLogNormaliser);

/// <summary>
/// Per-position top log-probabilities through NextTokens (whose numbers equal Score's on prefix + candidate): the top N by the
/// policy or the reference; for the guided mix the whole distribution, which it needs to normalise (a full-vocabulary answer per
/// position: guided log-probabilities cost that). Calls are cut to the request limits and, within one instance (one HTTP request,
/// whatever its prompts and choices), run one after another, so that a long request cannot fill the queue alone.
/// </summary>
public sealed class TopLogprobs(ScoringEngine engine, RequestLimits limits)
{
    readonly SemaphoreSlim _oneAtATime = new(1);

    /// <param name="prefixes">for each position, the tokens before it (as an item) and their count</param>
    public async Task<PositionTop[]> ForAsync(IReadOnlyList<(ScoreItemInput Prefix, int Length)> prefixes, ModelChoice model, int topN,
        string caller, CancellationToken cancellation)
    {
        bool guided = model.From == SampleFrom.Guided;
        if (!guided && topN == 0 || prefixes.Count == 0) return [.. prefixes.Select(_ => new PositionTop([], [], 0))];
        int k = guided ? engine.Info.VocabSize : topN;
        var rank = model.From == SampleFrom.Reference ? RankBy.Reference : RankBy.Policy;
        var result = new List<PositionTop>(prefixes.Count);
        foreach (var chunk in Chunks(prefixes))
        {
            await _oneAtATime.WaitAsync(cancellation);
            IReadOnlyList<NextTokenChoices> choices;
            try
            {
                choices = await engine.NextTokensAsync(chunk, new NextTokenOptions(k, null, rank), cancellation, caller);
            }
            finally
            {
                _oneAtATime.Release();
            }
            result.AddRange(choices.Select(c => guided ? GuidedTop(c.Candidates, model, topN) : PlainTop(c.Candidates, model)));
        }
        return [.. result];
    }

    static PositionTop PlainTop(NextTokenCandidate[] candidates, ModelChoice model) =>
        new([.. candidates.Select(c => c.Id)], [.. candidates.Select(c => model.Logprob(c.PolicyLogprob, c.ReferenceLogprob, 0))], 0);

    /// <summary>log p(v) = mix(v) − logsumexp over the vocabulary of mix, in double.</summary>
    static PositionTop GuidedTop(NextTokenCandidate[] all, ModelChoice model, int topN)
    {
        double[] mix = [.. all.Select(c => model.Mix(c.PolicyLogprob, c.ReferenceLogprob))];
        double max = mix.Max();
        double lse = max + Math.Log(mix.Sum(m => Math.Exp(m - max)));
        int[] order = [.. Enumerable.Range(0, all.Length).OrderByDescending(i => mix[i]).ThenBy(i => all[i].Id).Take(topN)];
        return new PositionTop([.. order.Select(i => all[i].Id)], [.. order.Select(i => mix[i] - lse)], lse);
    }

    /// <summary>Consecutive runs of prefixes within the per-request item and token limits.</summary>
    IEnumerable<List<ScoreItemInput>> Chunks(IReadOnlyList<(ScoreItemInput Prefix, int Length)> prefixes)
    {
        var chunk = new List<ScoreItemInput>();
        long tokens = 0;
        foreach (var (prefix, length) in prefixes)
        {
            if (chunk.Count > 0 && (chunk.Count == limits.MaxItemsPerRequest || tokens + length > limits.MaxTokensPerRequest))
            {
                yield return chunk;
                (chunk, tokens) = ([], 0);
            }
            chunk.Add(prefix);
            tokens += length;
        }
        if (chunk.Count > 0) yield return chunk;
    }
}
