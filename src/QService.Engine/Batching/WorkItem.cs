using QService.Runtime.Scoring;
using System.Diagnostics;

namespace QService.Engine.Batching;

/// <summary>
/// What one request shares among its items: its trace context, under which the batcher records its spans,
/// who sent it (a connection or an API key), among whom batches are shared fairly, and whether its numbers must
/// depend on it alone (<see cref="Isolated"/>).
/// </summary>
internal sealed class RequestContext(ActivityContext parent, string caller = "", bool isolated = false)
{
    public ActivityContext Parent { get; } = parent;
    public string Caller { get; } = caller;

    /// <summary>
    /// Its items share batches with each other only and start from an empty prefix cache of their own, so that the same
    /// request always runs the same passes and gets the same bits back (float results change with the batch a sequence
    /// shares and with what the cache held).
    /// </summary>
    public bool Isolated { get; } = isolated;
}

/// <summary>
/// One sequence waiting to be scored: the prompt+response token ids, where the response starts, the policies
/// that score it (by index; the reference scores it once for all of them) and the completion the caller awaits.
/// Cancelled items are skipped by the batcher, never computed.
/// </summary>
internal sealed class WorkItem(int[] tokens, int promptTokens, RequestContext request, CancellationToken cancellation, bool wantsLastLogits = false,
    int[]? policies = null)
{
    /// <summary>The policies to run, by index, each once; the default policy alone unless asked otherwise.</summary>
    public int[] Policies { get; } = policies ?? [0];

    /// <summary>What the item costs a batch: each of its tokens runs through its policies and the reference.</summary>
    public int Cost => BatchPlanner.Cost(Length, Policies.Length + 1);

    /// <summary>The caller wants the logits at the last position too (the next token's distribution).</summary>
    public bool WantsLastLogits { get; } = wantsLastLogits;
    public int[] Tokens { get; } = tokens;
    public int PromptTokens { get; } = promptTokens;
    public RequestContext Request { get; } = request;
    public CancellationToken Cancellation { get; } = cancellation;
    public long EnqueuedAt { get; set; }
    public int Length => Tokens.Length;

    /// <summary>Continuations run on the thread pool, never on the model owner thread.</summary>
    public TaskCompletionSource<ItemPasses> Completion { get; } =
        new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsAbandoned => Completion.Task.IsCompleted || Cancellation.IsCancellationRequested;
}

/// <summary>
/// The models' share of the passes that scored an item, as the runtime returned them: one result per policy it
/// asked for (in its order) and the reference's.
/// </summary>
internal sealed record ItemPasses(PassResult[] Policies, PassResult Reference)
{
    /// <summary>The item's only (or first) policy.</summary>
    public PassResult Policy => Policies[0];
}
