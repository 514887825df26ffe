using System.Diagnostics;

namespace QService.Engine.Batching;

/// <summary>What one request shares among its items: its trace context, under which the batcher records its spans.</summary>
internal sealed class RequestContext(ActivityContext parent)
{
    public ActivityContext Parent { get; } = parent;
}

/// <summary>
/// One sequence waiting to be scored: the prompt+response token ids, where the response starts, and the
/// completion the caller awaits. Cancelled items are skipped by the batcher, never computed.
/// </summary>
internal sealed class WorkItem(int[] tokens, int promptTokens, RequestContext request, CancellationToken cancellation)
{
    public int[] Tokens { get; } = tokens;
    public int PromptTokens { get; } = promptTokens;
    public RequestContext Request { get; } = request;
    public CancellationToken Cancellation { get; } = cancellation;
    public long EnqueuedAt { get; set; }
    public int Length => Tokens.Length;

    /// <summary>Continuations run on the thread pool, never on the model owner thread.</summary>
    public TaskCompletionSource<(float[] Policy, float[] Reference)> Completion { get; } =
        new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsAbandoned => Completion.Task.IsCompleted || Cancellation.IsCancellationRequested;
}
