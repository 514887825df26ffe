namespace QService.Engine.Batching;

/// <summary>
/// Pure batching policy, kept apart from threads and models so it can be tested alone: which queued items
/// go into the next batch, and how that batch splits into forward passes of similar lengths.
/// </summary>
internal static class BatchPlanner
{
    /// <summary>A policy and the reference score every token.</summary>
    public const int ModelsPerToken = 2;

    /// <summary>A sequence's share of the batch budget: each token once per model that runs it.</summary>
    public static int Cost(int tokens, int models = ModelsPerToken) => tokens * models;

    /// <summary>
    /// The items of the next batch, within the token budget and sequence limit, fairly across callers: one
    /// item from each caller in turn (callers in the order of their oldest item, each caller's items in
    /// arrival order), so that one caller's backlog delays another's item by about one batch at most. The
    /// first item always fits: admission refused anything larger than the budget. The queue is left as it is.
    /// An isolated request (<see cref="RequestContext.Isolated"/>) shares no batch: when it is the oldest in the queue its
    /// items make the batch alone (so the same request is always cut into the same batches); until then the others pass it.
    /// </summary>
    public static List<WorkItem> ChooseBatch(IEnumerable<WorkItem> queue, BatchingOptions options)
    {
        var head = queue.FirstOrDefault();
        var eligible = head?.Request.Isolated == true ? queue.Where(i => i.Request == head.Request) : queue.Where(i => !i.Request.Isolated);
        var byCaller = new Dictionary<string, Queue<WorkItem>>();
        var callers = new List<Queue<WorkItem>>();
        foreach (var item in eligible)
        {
            if (!byCaller.TryGetValue(item.Request.Caller, out var own))
            {
                byCaller[item.Request.Caller] = own = new Queue<WorkItem>();
                callers.Add(own);
            }
            own.Enqueue(item);
        }
        var batch = new List<WorkItem>();
        int cost = 0;
        for (bool took = true; took && batch.Count < options.MaxBatchSequences;)
        {
            took = false;
            foreach (var own in callers)
            {
                if (batch.Count >= options.MaxBatchSequences || own.Count == 0) continue;
                int next = own.Peek().Cost;
                if (batch.Count > 0 && cost + next > options.MaxBatchTokens) continue; // this caller's next item waits; others may still fit
                batch.Add(own.Dequeue());
                cost += next;
                took = true;
            }
        }
        return batch;
    }

    /// <summary>
    /// The queue already holds a full batch (by sequences or tokens), or an isolated request at its head, which nothing
    /// could join: no reason to wait for more.
    /// </summary>
    public static bool FillsBatch(IEnumerable<WorkItem> queue, BatchingOptions options)
    {
        if (queue.FirstOrDefault()?.Request.Isolated == true) return true;
        int cost = 0, count = 0;
        foreach (var item in queue.Where(i => !i.Request.Isolated))
        {
            cost += item.Cost;
            if (++count >= options.MaxBatchSequences || cost >= options.MaxBatchTokens) return true;
        }
        return false;
    }

    /// <summary>
    /// Sorts a batch by length and cuts it into forward passes, starting a new pass when padding every
    /// member to the longest would exceed MaxPaddingFraction of the pass's real tokens.
    /// </summary>
    public static List<List<WorkItem>> SplitByLength(IEnumerable<WorkItem> batch, BatchingOptions options)
    {
        var passes = new List<List<WorkItem>>();
        List<WorkItem>? current = null;
        long realTokens = 0;
        foreach (var item in batch.OrderBy(i => i.Length))
        {
            if (current != null)
            {
                long padded = (long)item.Length * (current.Count + 1); // sorted: this item is the longest
                if (padded > (1 + options.MaxPaddingFraction) * (realTokens + item.Length)) current = null;
            }
            if (current == null)
            {
                current = [];
                realTokens = 0;
                passes.Add(current);
            }
            current.Add(item);
            realTokens += item.Length;
        }
        return passes;
    }
}
