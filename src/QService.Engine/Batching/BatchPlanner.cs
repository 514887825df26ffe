namespace QService.Engine.Batching;

/// <summary>
/// Pure batching policy, kept apart from threads and models so it can be tested alone: which queued items
/// go into the next batch, and how that batch splits into forward passes of similar lengths.
/// </summary>
internal static class BatchPlanner
{
    /// <summary>Two models score every token.</summary>
    public const int ModelsPerToken = 2;

    public static int Cost(int tokens) => tokens * ModelsPerToken;

    /// <summary>
    /// Takes items while the batch stays within the token budget and sequence limit, fairly across callers:
    /// one item from each caller in turn (callers in the order of their oldest item, each caller's items in
    /// arrival order), so that one caller's backlog delays another's item by about one batch at most. The
    /// first item always fits: admission refused anything larger than the budget.
    /// </summary>
    public static List<WorkItem> TakeBatch(LinkedList<WorkItem> queue, BatchingOptions options)
    {
        var byCaller = new Dictionary<string, Queue<LinkedListNode<WorkItem>>>();
        var callers = new List<Queue<LinkedListNode<WorkItem>>>();
        for (var node = queue.First; node != null; node = node.Next)
        {
            if (!byCaller.TryGetValue(node.Value.Request.Caller, out var own))
            {
                byCaller[node.Value.Request.Caller] = own = new Queue<LinkedListNode<WorkItem>>();
                callers.Add(own);
            }
            own.Enqueue(node);
        }
        var batch = new List<WorkItem>();
        int cost = 0;
        for (bool took = true; took && batch.Count < options.MaxBatchSequences;)
        {
            took = false;
            foreach (var own in callers)
            {
                if (batch.Count >= options.MaxBatchSequences || own.Count == 0) continue;
                int next = Cost(own.Peek().Value.Length);
                if (batch.Count > 0 && cost + next > options.MaxBatchTokens) continue; // this caller's next item waits; others may still fit
                var node = own.Dequeue();
                queue.Remove(node);
                batch.Add(node.Value);
                cost += next;
                took = true;
            }
        }
        return batch;
    }

    /// <summary>
    /// Sorts a batch by length and cuts it into forward passes, starting a new pass when padding every
    /// member to the longest would exceed MaxPaddingFraction of the pass's real tokens.
    /// </summary>
    public static List<List<WorkItem>> SplitByLength(List<WorkItem> batch, BatchingOptions options)
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
