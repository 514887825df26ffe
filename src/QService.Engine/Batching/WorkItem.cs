using QService.Runtime.Scoring;
using System.Diagnostics;

namespace QService.Engine.Batching;

/// <summary>
/// What one request shares among its items: its trace context, under which the batcher records its spans,
/// and who sent it (a connection or an API key), among whom batches are shared fairly.
/// </summary>
internal sealed class RequestContext(ActivityContext parent, string caller = "")
{
    public ActivityContext Parent { get; } = parent;
    public string Caller { get; } = caller;
}

/// <summary>
/// One sequence waiting to be scored: the prompt+response token ids, where the response starts, and the
/// completion the caller awaits. Cancelled items are skipped by the batcher, never computed.
/// </summary>
internal sealed class WorkItem(int[] tokens, int promptTokens, RequestContext request, CancellationToken cancellation, bool wantsLastLogits = false)
{
    /// <summary>The caller wants the logits at the last position too (the next token's distribution).</summary>
    public bool WantsLastLogits { get; } = wantsLastLogits;
    public int[] Tokens { get; } = tokens;
    public int PromptTokens { get; } = promptTokens;
    public RequestContext Request { get; } = request;
    public CancellationToken Cancellation { get; } = cancellation;
    public long EnqueuedAt { get; set; }
    public int Length => Tokens.Length;

    /// <summary>Continuations run on the thread pool, never on the model owner thread.</summary>
    public TaskCompletionSource<PairScores> Completion { get; } =
        new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsAbandoned => Completion.Task.IsCompleted || Cancellation.IsCancellationRequested;
}

/// <summary>Both models' share of the passes that scored an item, as the runtime returned them: nothing to copy field by field.</summary>
internal sealed record PairScores(PassResult Policy, PassResult Reference);
