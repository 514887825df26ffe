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
