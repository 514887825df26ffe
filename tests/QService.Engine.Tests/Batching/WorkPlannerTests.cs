using System.Diagnostics;
using QService.Engine.Batching;
using QService.Engine.Decoding;
using QService.Engine.Sampling;

namespace QService.Engine.Tests.Batching;

/// <summary>The owner thread's scheduler as a pure function: queues, running samples and the clock in, a decision out.</summary>
public class WorkPlannerTests
{
    static readonly BatchingOptions Options = new() { MaxQueueDelayMs = 10, MaxBatchTokens = 100, MaxBatchSequences = 4, MaxRunningSamples = 8 };
    static readonly long Delay = (long)(Options.MaxQueueDelayMs * Stopwatch.Frequency / 1000.0);

    static WorkItem Item(int length, string caller = "", long enqueuedAt = 0) =>
        new(new int[length], 1, new RequestContext(default, caller), CancellationToken.None) { EnqueuedAt = enqueuedAt };

    static SampleWork Sample(int n, int promptTokens = 4, int started = 0) =>
        new(new int[promptTokens], n, new TokenDistribution(1, 1, 0, 1), seed: 1, budget: 8, FinishReason.Length, eosTokenId: null, stop: null,
            new RequestContext(default), CancellationToken.None) { Started = started };

    static WorkPlan Plan(WorkItem[] queue, SampleWork[]? samples = null, int running = 0, long now = 0) =>
        WorkPlanner.Plan(queue, samples ?? [], running, now, Options);

    [Fact]
    public void NothingQueuedOrRunning_WaitsUntilWorkArrives()
    {
        Assert.Equal(new WorkPlan.Wait(null), Plan([]));
    }

    [Fact]
    public void AYoungItem_WaitsForTheRestOfMaxQueueDelay()
    {
        Assert.Equal(new WorkPlan.Wait(Delay - 3), Plan([Item(5)], now: 3));
    }

    [Fact]
    public void AnItemThatWaitedMaxQueueDelay_RunsAlone()
    {
        var item = Item(5);
        var run = Assert.IsType<WorkPlan.Run>(Plan([item], now: Delay));
        Assert.Equal([item], run.Batch);
        Assert.Empty(run.Admitted);
    }

    [Fact]
    public void AQueueThatFillsABatch_RunsAtOnce_ByTokensOrBySequences()
    {
        Assert.IsType<WorkPlan.Run>(Plan([Item(30), Item(20)])); // 50 tokens x 2 models = the budget of 100
        Assert.IsType<WorkPlan.Wait>(Plan([Item(30), Item(19)]));
        Assert.IsType<WorkPlan.Run>(Plan([Item(1), Item(1), Item(1), Item(1)])); // MaxBatchSequences
    }

    [Fact]
    public void WhileSamplesDecode_AYoungItemIsTakenAtOnce_AndWithNothingQueuedTheDecoderSteps()
    {
        var item = Item(5);
        Assert.Equal([item], Assert.IsType<WorkPlan.Run>(Plan([item], running: 1)).Batch);
        var step = Assert.IsType<WorkPlan.Run>(Plan([], running: 1));
        Assert.Empty(step.Batch);
        Assert.Empty(step.Admitted);
    }

    [Fact]
    public void TheBatch_TakesTurnsAcrossCallers_WithinTheBudget()
    {
        WorkItem[] queue = [Item(5, "a"), Item(5, "a"), Item(5, "a"), Item(5, "b")];
        var run = Assert.IsType<WorkPlan.Run>(Plan(queue, now: Delay));
        Assert.Equal([queue[0], queue[3], queue[1], queue[2]], run.Batch);
    }

    [Fact]
    public void ASampleRequestLargerThanTheRoom_JoinsInWaves()
    {
        var large = Sample(n: 10);
        var first = Assert.IsType<WorkPlan.Run>(Plan([], [large], running: 3));
        Assert.Equal([new SampleWave(large, 0, 5)], first.Admitted); // 8 running at most
        Assert.Equal(0, large.Started); // the plan takes nothing: the batcher does

        var rest = Sample(n: 10, started: 5);
        Assert.Equal([new SampleWave(rest, 5, 5)], Assert.IsType<WorkPlan.Run>(Plan([], [rest], running: 0)).Admitted);
        var full = Assert.IsType<WorkPlan.Run>(Plan([], [rest], running: 8)); // no room: the running samples step, the rest waits
        Assert.Empty(full.Admitted);
    }

    [Fact]
    public void SampleRequests_JoinInArrivalOrder_WithinThePrefillBudget()
    {
        SampleWork a = Sample(n: 1, promptTokens: 30), b = Sample(n: 1, promptTokens: 20), c = Sample(n: 1, promptTokens: 1);
        var run = Assert.IsType<WorkPlan.Run>(Plan([], [a, b, c]));
        Assert.Equal([a, b], run.Admitted.Select(w => w.Work)); // (30 + 20) x 2 = 100; c waits behind, in order
        var alone = Sample(n: 1, promptTokens: 60);
        Assert.Equal([alone], Assert.IsType<WorkPlan.Run>(Plan([], [alone])).Admitted.Select(w => w.Work)); // the first always joins
    }
}
