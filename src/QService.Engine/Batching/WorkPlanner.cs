using System.Diagnostics;
using QService.Engine.Decoding;

namespace QService.Engine.Batching;

/// <summary>What the owner thread does next, as the planner decides it.</summary>
internal abstract record WorkPlan
{
    /// <summary>Run this scoring batch (none when empty), then step the decoder with these waves joining (none when empty).</summary>
    public sealed record Run(IReadOnlyList<WorkItem> Batch, IReadOnlyList<SampleWave> Admitted) : WorkPlan;

    /// <summary>Nothing to run yet: wait for new work, at most <paramref name="Ticks"/> (Stopwatch ticks; null: until some arrives).</summary>
    public sealed record Wait(long? Ticks) : WorkPlan;
}

/// <summary>
/// The owner thread's scheduler, as a pure function of the queues, the running samples and the clock: no locks,
/// no waiting, no changes to what it is given (the batcher takes what it decides, under its lock, and runs it).
/// </summary>
internal static class WorkPlanner
{
    /// <summary>
    /// While samples are decoding, queued items are taken at once (between two steps); otherwise a batch waits
    /// until it is full or its oldest item has waited MaxQueueDelayMs. Abandoned work is dropped before this.
    /// </summary>
    /// <param name="queue">the items waiting, in arrival order</param>
    /// <param name="samples">the Sample requests waiting to join the decoder, in arrival order</param>
    /// <param name="running">samples in the decoder now</param>
    /// <param name="now">Stopwatch ticks, the clock of <see cref="WorkItem.EnqueuedAt"/></param>
    public static WorkPlan Plan(IReadOnlyCollection<WorkItem> queue, IEnumerable<SampleWork> samples, int running, long now, BatchingOptions options)
    {
        var admitted = Admit(samples, running, options);
        bool decoding = admitted.Count > 0 || running > 0;
        if (queue.Count == 0) return decoding ? new WorkPlan.Run([], admitted) : new WorkPlan.Wait(null);
        long maxDelay = (long)(options.MaxQueueDelayMs * Stopwatch.Frequency / 1000.0);
        long waited = now - queue.First().EnqueuedAt;
        if (decoding || waited >= maxDelay || BatchPlanner.FillsBatch(queue, options))
            return new WorkPlan.Run(BatchPlanner.ChooseBatch(queue, options), admitted);
        return new WorkPlan.Wait(maxDelay - waited);
    }

    /// <summary>
    /// Waiting samples that fit next to the running ones (at most Batching:MaxRunningSamples in all) and into one
    /// prefill pass, in arrival order. A request with more samples than there is room for joins in waves: its
    /// first samples now, the rest as running ones leave (each sample's draws depend only on its seed and index).
    /// </summary>
    public static List<SampleWave> Admit(IEnumerable<SampleWork> samples, int running, BatchingOptions options)
    {
        var admitted = new List<SampleWave>();
        int prefillCost = 0;
        foreach (var work in samples)
        {
            int room = options.MaxRunningSamples - running;
            // Their prompts run in one pass: within the batch token budget, like a scoring batch.
            int cost = BatchPlanner.Cost(work.Tokens.Length);
            if (room <= 0 || admitted.Count > 0 && prefillCost + cost > options.MaxBatchTokens) break;
            int count = Math.Min(room, work.Waiting);
            admitted.Add(new SampleWave(work, work.Started, count));
            running += count;
            prefillCost += cost;
        }
        return admitted;
    }
}
