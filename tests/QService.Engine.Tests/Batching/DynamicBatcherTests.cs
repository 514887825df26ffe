using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Backends;
using QService.Engine.Batching;
using QService.Engine.Telemetry;

namespace QService.Engine.Tests.Batching;

/// <summary>The batcher against a fake backend: batching, cancellation and failures without LibTorch.</summary>
public class DynamicBatcherTests
{
    /// <summary>A batcher without a prefix cache unless one is given.</summary>
    internal static (DynamicBatcher Batcher, EngineTelemetry Telemetry) Create(Func<IScoringBackend> load, BatchingOptions? options = null,
        PrefixCacheOptions? cache = null)
    {
        var telemetry = new EngineTelemetry(() => 0);
        return (new DynamicBatcher(load, options ?? new BatchingOptions(), telemetry, NullLogger.Instance, cache ?? new PrefixCacheOptions { Enabled = false }),
            telemetry);
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
            Assert.Equal([2, 3, 4], results[0].Policy.Logprobs);
            Assert.Equal([-7, -8], results[1].Reference.Logprobs);
            Assert.Equal([10, 11], results[2].Policy.Logprobs);
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
            Assert.Equal([2f, 3f], keptResult.Policy.Logprobs);
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
            Assert.DoesNotContain("/tmp/x.cpp", error.Message); // LibTorch's text and paths stay in the log
            Assert.Contains("logged under id", error.Message);
            Assert.Equal(1, batcher.Failures.Consecutive);
            var second = Item([4, 5, 6]);
            batcher.Enqueue([second]);
            var secondResult = await second.Completion.Task;
            Assert.Equal([5f, 6f], secondResult.Policy.Logprobs);
            Assert.Equal(0, batcher.Failures.Consecutive); // a good pass ends the run of failures
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

    internal static PrefixCacheOptions Cache(long maxBytes = 1 << 20) => new() { Enabled = true, BlockSize = 4, MaxBytes = maxBytes };

    static float[] Expected(int[] tokens, int promptTokens) => [.. tokens[promptTokens..].Select(t => (float)t)];

    [Fact]
    public async Task AnItemExtendingACachedPrefix_ComputesOnlyItsNewTokens_WithTheSameNumbers()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend, cache: Cache());
        using (batcher) using (telemetry)
        {
            batcher.Start();
            int[] first = [.. Enumerable.Range(1, 10)], extended = [.. Enumerable.Range(1, 13)];
            var a = Item(first, promptTokens: 2);
            batcher.Enqueue([a]);
            await a.Completion.Task;
            var b = Item(extended, promptTokens: 2);
            batcher.Enqueue([b]);
            var result = await b.Completion.Task;

            var input = backend.Inputs[^1].Inputs.Single();
            Assert.Equal(8, input.CachedLength);          // two whole blocks of 4 were cached by the first item
            Assert.Equal(2, input.Past!.Count);
            Assert.Equal(8, input.FirstTarget);           // positions 2..7 come from the cache
            Assert.Equal(Expected(extended, 2), result.Policy.Logprobs);
            Assert.Equal(Expected(extended, 2).Select(x => -x), result.Reference.Logprobs);
        }
        Assert.Equal(0, backend.LiveStates); // every cached block freed with the batcher
    }

    [Fact]
    public async Task CandidatesSharingAPrefixInOneRequest_ComputeItOnce()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend, cache: Cache());
        using (batcher) using (telemetry)
        {
            int[] shared = [.. Enumerable.Range(1, 9)];
            WorkItem[] candidates = [.. Enumerable.Range(0, 3).Select(c => Item([.. shared, 100 + c, 200 + c], promptTokens: 3))];
            batcher.Enqueue(candidates);
            batcher.Start();
            var results = await Task.WhenAll(candidates.Select(c => c.Completion.Task));
            for (int c = 0; c < 3; c++) Assert.Equal(Expected(candidates[c].Tokens, 3), results[c].Policy.Logprobs);

            var policyPasses = backend.Inputs.Where(p => p.Role == ModelRole.Policy).ToList();
            Assert.Equal(2, policyPasses.Count);
            Assert.Equal(shared[..8], policyPasses[0].Inputs.Single().Tokens); // the shared prefix, once
            Assert.All(policyPasses[1].Inputs, i => Assert.Equal(8, i.CachedLength));
        }
    }

    [Fact]
    public async Task UnderATinyBudget_BlocksAreEvicted_AndResultsStayTheSame()
    {
        var backend = new FakeBackend();
        // 2 blocks of 100 bytes per model.
        var (batcher, telemetry) = Create(() => backend, cache: Cache(maxBytes: 400));
        using (batcher) using (telemetry)
        {
            batcher.Start();
            var rng = new Random(5);
            for (int r = 0; r < 20; r++)
            {
                int[] tokens = [.. Enumerable.Range(0, 6 + rng.Next(12)).Select(_ => rng.Next(1, 4))];
                var item = Item(tokens, promptTokens: 1 + rng.Next(3));
                batcher.Enqueue([item]);
                Assert.Equal(Expected(tokens, item.PromptTokens), (await item.Completion.Task).Policy.Logprobs);
                Assert.InRange(backend.LiveStates, 0, 4);
            }
        }
        Assert.Equal(0, backend.LiveStates);
    }

    [Fact]
    public async Task WithTheCacheOff_TheBackendSeesPlainPasses()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = Create(() => backend);
        using (batcher) using (telemetry)
        {
            batcher.Start();
            for (int r = 0; r < 2; r++)
            {
                var item = Item([.. Enumerable.Range(1, 12)]);
                batcher.Enqueue([item]);
                await item.Completion.Task;
            }
            Assert.All(backend.Inputs.SelectMany(p => p.Inputs), i => Assert.True(i.CachedLength == 0 && i.NewBlockSize == 0));
        }
    }
}
