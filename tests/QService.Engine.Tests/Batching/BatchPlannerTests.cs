using QService.Engine.Batching;

namespace QService.Engine.Tests.Batching;

public class BatchPlannerTests
{
    static readonly RequestContext Request = new(default);

    static LinkedList<WorkItem> Queue(params int[] lengths) =>
        new(lengths.Select(n => new WorkItem(new int[n], 1, Request, CancellationToken.None)));

    [Fact]
    public void ChooseBatch_StopsAtTheTokenBudget_CountingBothModels_AndLeavesTheQueueAsItIs()
    {
        var queue = Queue(10, 10, 10, 10);
        var batch = BatchPlanner.ChooseBatch(queue, new BatchingOptions { MaxBatchTokens = 60 });
        Assert.Equal(3, batch.Count); // 3 x 10 tokens x 2 models = 60
        Assert.Equal(4, queue.Count);
    }

    [Fact]
    public void ChooseBatch_KeepsArrivalOrder_AndStopsAtMaxSequences()
    {
        var queue = Queue(5, 50, 1, 2, 3);
        var batch = BatchPlanner.ChooseBatch(queue, new BatchingOptions { MaxBatchTokens = 10_000, MaxBatchSequences = 3 });
        Assert.Equal([5, 50, 1], batch.Select(i => i.Length));
        Assert.Equal([2, 3], queue.Except(batch).Select(i => i.Length));
    }

    [Fact]
    public void ChooseBatch_DoesNotSkipAheadOfALongItem()
    {
        // A long item that does not fit waits for the next batch, but nothing behind it jumps the queue.
        var queue = Queue(10, 40, 1);
        var batch = BatchPlanner.ChooseBatch(queue, new BatchingOptions { MaxBatchTokens = 80 });
        Assert.Equal([10], batch.Select(i => i.Length));
        Assert.Equal([40, 1], queue.Except(batch).Select(i => i.Length));
    }

    static WorkItem[] RequestOf(bool isolated, params int[] lengths)
    {
        var request = new RequestContext(default, "", isolated);
        return [.. lengths.Select(n => new WorkItem(new int[n], 1, request, CancellationToken.None))];
    }

    [Fact]
    public void ChooseBatch_AnIsolatedRequestAtTheHead_MakesTheBatchAlone_InItsOrder_WithinTheBudget()
    {
        var isolated = RequestOf(true, 10, 20, 5, 30);
        var queue = new LinkedList<WorkItem>([.. isolated, .. RequestOf(false, 1, 1)]);
        var options = new BatchingOptions { MaxBatchTokens = 120 };
        Assert.Equal(isolated[..3], BatchPlanner.ChooseBatch(queue, options)); // (10 + 20 + 5) x 2 = 70; the 30 waits for the next batch
        Assert.True(BatchPlanner.FillsBatch(queue, options)); // nothing could join it: no reason to wait
    }

    [Fact]
    public void ChooseBatch_SharedBatchesPassAnIsolatedRequestBy_UntilItIsTheOldest()
    {
        var (first, isolated, last) = (RequestOf(false, 4), RequestOf(true, 3, 3), RequestOf(false, 5));
        var queue = new LinkedList<WorkItem>([.. first, .. isolated, .. last]);
        var options = new BatchingOptions { MaxBatchTokens = 10_000 };
        Assert.Equal([first[0], last[0]], BatchPlanner.ChooseBatch(queue, options));
        Assert.False(BatchPlanner.FillsBatch(queue, options)); // the isolated items do not count towards a shared batch
        queue.RemoveFirst();
        Assert.Equal(isolated, BatchPlanner.ChooseBatch(queue, options));
    }

    [Fact]
    public void SplitByLength_GroupsSimilarLengths_AndBoundsPadding()
    {
        var options = new BatchingOptions { MaxPaddingFraction = 0.25 };
        var batch = Queue(100, 3, 98, 4, 5, 97).ToList();
        var passes = BatchPlanner.SplitByLength(batch, options);
        Assert.Equal([[3, 4, 5], [97, 98, 100]], passes.Select(p => p.Select(i => i.Length).ToArray()).ToArray());
        foreach (var pass in passes)
        {
            long padded = (long)pass.Max(i => i.Length) * pass.Count;
            Assert.True(padded <= 1.25 * pass.Sum(i => i.Length));
        }
    }

    [Fact]
    public void SplitByLength_KeepsEqualLengthsTogether()
    {
        var passes = BatchPlanner.SplitByLength(Queue(16, 16, 16, 16).ToList(), new BatchingOptions { MaxPaddingFraction = 0 });
        Assert.Single(passes);
    }
}
