using QService.Engine.Backends;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Batching;
using QService.Engine.Telemetry;

namespace QService.Engine.Tests.Batching;

/// <summary>The batcher's fault paths against a fake backend: out of memory, hangs, repeated failures, draining.</summary>
public class FaultPathTests
{
    static DynamicBatcher Start(FakeBackend backend, EngineTelemetry? telemetry = null)
    {
        var batcher = new DynamicBatcher(() => backend, new BatchingOptions(), telemetry ?? new EngineTelemetry(() => 0), NullLogger.Instance,
            new PrefixCacheOptions { Enabled = false });
        batcher.Start();
        return batcher;
    }

    static WorkItem Item(params int[] tokens) => new(tokens, 1, new RequestContext(default), default);

    [Fact]
    public async Task AnOutOfMemoryPass_IsSplitInHalvesAndRetried_BeforeAnyItemFails()
    {
        var failedPasses = new List<string>();
        using var telemetry = new EngineTelemetry(() => 0);
        using var listener = new MeterListener();
        // This batcher's counter only: other tests' batchers fail passes in parallel, under the same instrument name.
        listener.InstrumentPublished = (instrument, l) => { if (instrument == telemetry.FailedPasses) l.EnableMeasurementEvents(instrument); };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) => { lock (failedPasses) failedPasses.Add((string)tags[0].Value!); });
        listener.Start();
        // Passes of more than two sequences run out of memory, as a too-large batch would.
        var backend = new FakeBackend();
        backend.FailOnCall = _ => backend.Calls[^1].Sequences.Length > 2
            ? new Exception("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB") : null;
        var items = Enumerable.Range(1, 8).Select(i => Item(i, i + 1, i + 2)).ToArray();
        using var batcher = new DynamicBatcher(() => backend, new BatchingOptions { MaxQueueDelayMs = 50 }, telemetry, NullLogger.Instance,
            new PrefixCacheOptions { Enabled = false });
        batcher.Enqueue(items);
        batcher.Start();
        for (int i = 0; i < items.Length; i++) Assert.Equal([i + 2f, i + 3f], (await items[i].Completion.Task).Policy.Logprobs);
        Assert.Contains(backend.Calls, c => c.Sequences.Length == 8);
        Assert.All(failedPasses, reason => Assert.Equal("out_of_memory", reason));
        Assert.Equal(3, failedPasses.Count); // 8 -> 4 + 4 -> 2 + 2 + 2 + 2
        Assert.Equal(0, batcher.Failures.Consecutive);
    }

    [Fact]
    public async Task AnItemThatAloneRunsOutOfMemory_FailsAlone_AsInternal()
    {
        var backend = new FakeBackend();
        backend.FailOnCall = _ => backend.Calls[^1].Sequences.Any(s => s.Length > 5) ? new Exception("CUDA out of memory. Tried to allocate 20.00 GiB") : null;
        var (small, large) = (Item(1, 2, 3), Item(1, 2, 3, 4, 5, 6, 7));
        using var batcher = Start(backend);
        batcher.Enqueue([small, large]);
        var smallScores = await small.Completion.Task;
        Assert.Equal([2f, 3f], smallScores.Policy.Logprobs);
        var error = await Assert.ThrowsAsync<ScoringException>(() => large.Completion.Task);
        Assert.Equal(ScoringErrorKind.Internal, error.Kind);
        Assert.Contains("out of memory", error.Message);
        Assert.DoesNotContain("20.00 GiB", error.Message);
    }

    [Fact]
    public async Task AHungPass_ShowsHowLongItHasRun_AndFailuresCountUntilAGoodPass()
    {
        using var release = new ManualResetEventSlim();
        var backend = new FakeBackend();
        backend.FailOnCall = n =>
        {
            if (backend.Calls[^1].Sequences[0][0] == 9) release.Wait();
            return backend.Calls[^1].Sequences[0][0] == 7 ? new InvalidOperationException("boom") : null;
        };
        using var batcher = Start(backend);
        await batcher.Ready;
        Assert.Null(batcher.BusyFor);

        var hung = Item(9, 9);
        batcher.Enqueue([hung]);
        while (batcher.BusyFor is not { } busy || busy < TimeSpan.FromMilliseconds(200)) await Task.Delay(20);
        Assert.False(batcher.IsIdle);
        release.Set();
        await hung.Completion.Task;

        for (int i = 1; i <= 3; i++)
        {
            var failing = Item(7, i);
            batcher.Enqueue([failing]);
            await Assert.ThrowsAsync<ScoringException>(() => failing.Completion.Task);
            Assert.Equal((i, "error"), batcher.Failures);
        }
        var good = Item(1, 2);
        batcher.Enqueue([good]);
        await good.Completion.Task;
        Assert.Equal(0, batcher.Failures.Consecutive);
        while (!batcher.IsIdle) await Task.Delay(10);
        Assert.Null(batcher.BusyFor);
    }

    [Fact]
    public async Task Draining_RefusesNewWork_AsUnavailable_AndFinishesWhatWasAccepted()
    {
        using var release = new ManualResetEventSlim();
        var backend = new FakeBackend { FailOnCall = _ => { release.Wait(); return null; } };
        using var batcher = Start(backend);
        var accepted = Item(1, 2, 3);
        batcher.Enqueue([accepted]);
        while (batcher.BusyFor is null) await Task.Delay(5);
        batcher.BeginDrain();
        var refused = Assert.Throws<ScoringException>(() => batcher.Enqueue([Item(4, 5)]));
        Assert.Equal(ScoringErrorKind.Unavailable, refused.Kind);
        Assert.False(batcher.IsIdle);
        release.Set();
        var acceptedScores = await accepted.Completion.Task;
        Assert.Equal([2f, 3f], acceptedScores.Policy.Logprobs);
        while (!batcher.IsIdle) await Task.Delay(5);
    }
}

/// <summary>Sharing the queue: fair turns across callers, and a bound in tokens as well as items.</summary>
public class FairQueueTests
{
    static WorkItem Item(string caller, params int[] tokens) => new(tokens, 1, new RequestContext(default, caller), default);

    [Fact]
    public async Task OneCallersBacklog_DelaysAnotherCallersItem_ByAboutOneBatchAtMost()
    {
        var backend = new FakeBackend();
        using var batcher = new DynamicBatcher(() => backend, new BatchingOptions { MaxBatchSequences = 8 }, new EngineTelemetry(() => 0),
            NullLogger.Instance, new PrefixCacheOptions { Enabled = false });
        var backlog = Enumerable.Range(0, 400).Select(i => Item("connection:a", 1, i % 50 + 2)).ToArray();
        batcher.Enqueue(backlog);
        var single = Item("connection:b", 7, 7, 7);
        batcher.Enqueue([single]);
        batcher.Start();
        await single.Completion.Task;
        await Task.WhenAll(backlog.Select(i => i.Completion.Task));
        int pass = backend.Calls.FindIndex(c => c.Sequences.Any(s => s.SequenceEqual([7, 7, 7])));
        // Items scored (by the policy) before b's: within the first batch of 8, not after the 400 of a's queued first.
        int before = backend.Calls.Take(pass).Where(c => c.Role == ModelRole.Policy).Sum(c => c.Sequences.Length);
        Assert.InRange(before, 0, 7);
    }

    [Fact]
    public void TheQueue_IsBoundedInTokens_AsWellAsItems()
    {
        using var batcher = new DynamicBatcher(() => new FakeBackend(), new BatchingOptions { MaxQueueTokens = 100 }, new EngineTelemetry(() => 0),
            NullLogger.Instance, new PrefixCacheOptions { Enabled = false });
        batcher.Enqueue([Item("a", [.. Enumerable.Range(0, 60)])]);
        var error = Assert.Throws<ScoringException>(() => batcher.Enqueue([Item("b", [.. Enumerable.Range(0, 60)])]));
        Assert.Equal(ScoringErrorKind.ResourceExhausted, error.Kind);
        Assert.Contains("60 of 100 tokens waiting; this request adds 60", error.Message);
    }
}
