using QService.Engine.Batching;
using QService.Engine.Sampling;

namespace QService.Engine.Decoding;

/// <summary>
/// A Sample request waiting for, or in, the decoder: the tokens its samples continue, how many, how to draw
/// and when to stop. <paramref name="Budget"/> is the most tokens a sample may add, ending it with
/// <paramref name="BudgetReason"/> (length, or context when no max_new_tokens was given). <paramref name="Policy"/> is the policy
/// (by index) that samples and scores them with the reference.
/// </summary>
internal sealed class SampleWork(int[] tokens, int n, TokenDistribution distribution, ulong seed, int budget, FinishReason budgetReason,
    int? eosTokenId, StopStrings? stop, RequestContext request, CancellationToken cancellation, int policy = 0)
{
    public int Policy { get; } = policy;
    public int[] Tokens { get; } = tokens;
    public int N { get; } = n;
    public TokenDistribution Distribution { get; } = distribution;
    public ulong Seed { get; } = seed;
    public int Budget { get; } = budget;
    public FinishReason BudgetReason { get; } = budgetReason;
    public int? EosTokenId { get; } = eosTokenId;
    public StopStrings? Stop { get; } = stop;
    public RequestContext Request { get; } = request;
    public CancellationToken Cancellation { get; } = cancellation;

    /// <summary>Samples admitted into the decoder so far: a request larger than Batching:MaxRunningSamples joins in waves.</summary>
    public int Started { get; set; }
    public int Waiting => N - Started;

    /// <summary>Finished samples by index; the completion is set when all N are in.</summary>
    public GeneratedSample?[] Results { get; } = new GeneratedSample?[n];
    public int Finished { get; set; }

    public TaskCompletionSource<GeneratedSample[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsAbandoned => Completion.Task.IsCompleted || Cancellation.IsCancellationRequested;
}

/// <summary>Samples First .. First + Count − 1 of a request, joining the decoder together.</summary>
internal sealed record SampleWave(SampleWork Work, int First, int Count);

/// <summary>One finished sample: the tokens it added and their log-probabilities under each model.</summary>
internal sealed record GeneratedSample(int[] Tokens, float[] Policy, float[] Reference, FinishReason Finish);

/// <summary>Stop strings, checked against the text a sample has generated so far.</summary>
internal sealed class StopStrings(IReadOnlyList<string> stops, Func<int[], string> decode)
{
    public bool FoundIn(List<int> generated)
    {
        string text = decode([.. generated]);
        return stops.Any(s => text.Contains(s, StringComparison.Ordinal));
    }
}
