using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Backends;
using QService.Engine.Batching;
using QService.Engine.Telemetry;

namespace QService.Engine.Tests.Batching;

/// <summary>The batcher against a fake backend: batching, cancellation and failures without LibTorch.</summary>
public class DynamicBatcherTests
{
    /// <summary>Answers log-prob = token id under the policy and −id under the reference; records every call.</summary>
    sealed class FakeBackend : IScoringBackend
    {
        public List<(ModelRole Role, int[][] Sequences)> Calls { get; } = [];
        public Func<int, Exception?> FailOnCall { get; set; } = _ => null;
        public bool Disposed { get; private set; }

        public void WarmUp() { }

        public ForwardResult[] Forward(ModelRole role, IReadOnlyList<int[]> sequences, IReadOnlyList<int> firstTargets, bool lastLogits)
        {
            lock (Calls) Calls.Add((role, [.. sequences]));
            if (FailOnCall(Calls.Count) is { } error) throw error;
            float sign = role == ModelRole.Policy ? 1 : -1;
            return [.. sequences.Select((s, b) => new ForwardResult(s[firstTargets[b]..].Select(t => sign * t).ToArray(), lastLogits ? [sign * s[^1]] : null))];
        }

        public void Dispose() => Disposed = true;
    }

    static (DynamicBatcher Batcher, EngineTelemetry Telemetry) Create(Func<IScoringBackend> load, BatchingOptions? options = null)
    {
        var telemetry = new EngineTelemetry(() => 0);
        return (new DynamicBatcher(load, options ?? new BatchingOptions(), telemetry, NullLogger.Instance), telemetry);
    }

    static WorkItem Item(int[] tokens, int promptTokens = 1, CancellationToken cancellation = default) =>
        new(tokens, promptTokens, new RequestContext(default), cancellation);

    [Fact]
    public async Task ItemsQueuedTogether_RunInOnePassPerModel_AndEachGetsItsOwnNumbers()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend);
        using (batcher) using (telemetry)
        {
            WorkItem[] items = [Item([1, 2, 3, 4]), Item([5, 6, 7, 8], promptTokens: 2), Item([9, 10, 11])];
            batcher.Enqueue(items);
            batcher.Start();
            var results = await Task.WhenAll(items.Select(i => i.Completion.Task));
            Assert.Equal([2, 3, 4], results[0].Policy);
            Assert.Equal([-7, -8], results[1].Reference);
            Assert.Equal([10, 11], results[2].Policy);
            Assert.Equal([ModelRole.Policy, ModelRole.Reference], backend.Calls.Select(c => c.Role));
            Assert.All(backend.Calls, c => Assert.Equal(3, c.Sequences.Length));
            Assert.Equal(backend.Calls[0].Sequences, backend.Calls[1].Sequences);
        }
        Assert.True(backend.Disposed);
    }

    [Fact]
    public async Task CancelledItems_AreNeverComputed()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend);
        using (batcher) using (telemetry)
        {
            using var gone = new CancellationTokenSource();
            gone.Cancel();
            var cancelled = Item([1, 2, 99], cancellation: gone.Token);
            var kept = Item([1, 2, 3]);
            batcher.Enqueue([cancelled, kept]);
            batcher.Start();
            var keptResult = await kept.Completion.Task;
            Assert.Equal([2f, 3f], keptResult.Policy);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.Completion.Task);
            Assert.DoesNotContain(backend.Calls.SelectMany(c => c.Sequences), s => s.Contains(99));
        }
    }

    [Fact]
    public async Task AFailingPass_FailsItsItemsAsInternal_AndTheNextBatchRuns()
    {
        var backend = new FakeBackend { FailOnCall = n => n == 1 ? new InvalidOperationException("native: out of memory at /tmp/x.cpp:12") : null };
        var (batcher, telemetry) = Create(() => backend);
        using (batcher) using (telemetry)
        {
            var first = Item([1, 2, 3]);
            batcher.Enqueue([first]);
            batcher.Start();
            var error = await Assert.ThrowsAsync<ScoringException>(() => first.Completion.Task);
            Assert.Equal(ScoringErrorKind.Internal, error.Kind);
            var second = Item([4, 5, 6]);
            batcher.Enqueue([second]);
            var secondResult = await second.Completion.Task;
            Assert.Equal([5f, 6f], secondResult.Policy);
        }
    }

    [Fact]
    public async Task ALoadFailure_FaultsReady_AndFailsQueuedItemsAsUnavailable()
    {
        var (batcher, telemetry) = Create(() => throw new InvalidOperationException("no such model"));
        using (batcher) using (telemetry)
        {
            var item = Item([1, 2, 3]);
            batcher.Enqueue([item]);
            batcher.Start();
            await Assert.ThrowsAsync<InvalidOperationException>(() => batcher.Ready);
            var error = await Assert.ThrowsAsync<ScoringException>(() => item.Completion.Task);
            Assert.Equal(ScoringErrorKind.Unavailable, error.Kind);
            Assert.Contains("no such model", error.Message);
        }
    }

    [Fact]
    public async Task ItemsOfVeryDifferentLengths_GoToSeparatePasses()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend, new BatchingOptions { MaxPaddingFraction = 0.25 });
        using (batcher) using (telemetry)
        {
            WorkItem[] items = [Item([.. Enumerable.Range(1, 40)]), Item([1, 2, 3])];
            batcher.Enqueue(items);
            batcher.Start();
            await Task.WhenAll(items.Select(i => i.Completion.Task));
            Assert.Equal(4, backend.Calls.Count); // two passes, each through both models
            Assert.All(backend.Calls, c => Assert.Single(c.Sequences));
        }
    }

    [Fact]
    public async Task Shutdown_FailsWhatIsStillQueued_AndFreesTheBackend()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend);
        using (telemetry)
        {
            batcher.Start();
            await batcher.Ready;
            batcher.Dispose();
            Assert.True(backend.Disposed);
            var error = Assert.Throws<ScoringException>(() => batcher.Enqueue([Item([1, 2])]));
            Assert.Equal(ScoringErrorKind.Unavailable, error.Kind);
        }
    }
}
