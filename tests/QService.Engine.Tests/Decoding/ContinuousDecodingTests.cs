using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Backends;
using QService.Engine.Batching;
using QService.Engine.Decoding;
using QService.Engine.Sampling;
using QService.Engine.Telemetry;
using QService.Engine.Tests.Batching;

namespace QService.Engine.Tests.Decoding;

/// <summary>Sampling through the batcher's continuous decoder, against a fake model whose distribution depends only on the sequence.</summary>
public class ContinuousDecodingTests
{
    static readonly TokenDistribution Plain = new(Alpha: 1);

    static DynamicBatcher Start(FakeBackend backend, EngineTelemetry? telemetry = null, PrefixCacheOptions? cache = null)
    {
        var batcher = new DynamicBatcher(() => backend, new BatchingOptions(), telemetry ?? new EngineTelemetry(() => 0), NullLogger.Instance,
            cache ?? new PrefixCacheOptions { Enabled = false });
        batcher.Start();
        return batcher;
    }

    static SampleWork Work(int[] tokens, int n, ulong seed, int budget = 20, int? eos = null, StopStrings? stop = null,
        TokenDistribution? distribution = null, CancellationToken cancellation = default) =>
        new(tokens, n, distribution ?? Plain, seed, budget, FinishReason.Length, eos, stop, new RequestContext(default), cancellation);

    /// <summary>What the fake models give each generated token, recomputed from the sequence alone.</summary>
    static void AssertScoredLikeTheModels(int[] prompt, GeneratedSample sample)
    {
        var sequence = prompt.ToList();
        for (int t = 0; t < sample.Tokens.Length; t++)
        {
            Assert.Equal(FakeDecodeBatch.Next(ModelRole.Policy, sequence)[sample.Tokens[t]], sample.Policy[t]);
            Assert.Equal(FakeDecodeBatch.Next(ModelRole.Reference, sequence)[sample.Tokens[t]], sample.Reference[t]);
            sequence.Add(sample.Tokens[t]);
        }
    }

    [Fact]
    public async Task ASeed_GivesTheSameSamples_AloneAndDecodedTogetherWithOthers()
    {
        using var batcher = Start(new FakeBackend());
        var alone = Work([1, 2, 3], n: 3, seed: 42);
        batcher.Enqueue(alone);
        var expected = await alone.Completion.Task;

        var again = Work([1, 2, 3], n: 3, seed: 42);
        var others = Enumerable.Range(0, 4).Select(i => Work([4, i], n: 2, seed: (ulong)i, budget: 5 + 7 * i)).ToList();
        batcher.Enqueue(others[0]);
        batcher.Enqueue(again);
        foreach (var other in others.Skip(1)) batcher.Enqueue(other);
        var together = await again.Completion.Task;
        await Task.WhenAll(others.Select(o => o.Completion.Task));

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(expected[i].Tokens, together[i].Tokens);
            AssertScoredLikeTheModels([1, 2, 3], together[i]);
        }
        Assert.NotEqual(expected[0].Tokens, expected[1].Tokens); // each sample has its own stream
        Assert.All(others.Select((o, i) => (o.Completion.Task.Result, Budget: 5 + 7 * i)),
            x => Assert.All(x.Result, s => Assert.Equal(x.Budget, s.Tokens.Length)));
    }

    [Fact]
    public async Task ARequestLargerThanMaxRunningSamples_RunsInWaves_NeverAboveTheBound_WithTheSameSamples()
    {
        var expected = await Samples(maxRunning: 64);
        int most = 0;
        var bounded = await Samples(maxRunning: 4, onStep: running => most = Math.Max(most, running));
        Assert.InRange(most, 1, 4);
        Assert.Equal(expected.Length, bounded.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i].Tokens, bounded[i].Tokens);

        // Budgets of 3 to 12 tokens, so that samples leave at different steps and the next wave fills their room.
        static async Task<GeneratedSample[]> Samples(int maxRunning, Action<int>? onStep = null)
        {
            var backend = new FakeBackend { OnStep = onStep ?? (_ => { }) };
            using var batcher = new DynamicBatcher(() => backend, new BatchingOptions { MaxRunningSamples = maxRunning }, new EngineTelemetry(() => 0),
                NullLogger.Instance, new PrefixCacheOptions { Enabled = false });
            batcher.Start();
            var big = Work([1, 2, 3], n: 10, seed: 7, budget: 12, eos: 5);
            var small = Work([4], n: 3, seed: 8, budget: 3);
            batcher.Enqueue(big);
            batcher.Enqueue(small);
            await small.Completion.Task;
            return await big.Completion.Task;
        }
    }

    [Fact]
    public async Task RequestsWaitingTogether_ArePrefilledInOnePass_AndEachSampleContinuesItsOwnPrompt()
    {
        var backend = new FakeBackend();
        using var batcher = new DynamicBatcher(() => backend, new BatchingOptions(), new EngineTelemetry(() => 0), NullLogger.Instance,
            new PrefixCacheOptions { Enabled = false });
        var works = new[] { Work([1, 2, 3], n: 2, seed: 1, budget: 4), Work([4, 5], n: 3, seed: 2, budget: 6), Work([6], n: 1, seed: 3, budget: 2) };
        foreach (var work in works) batcher.Enqueue(work); // queued before the owner thread starts: they wait together
        batcher.Start();
        for (int w = 0; w < works.Length; w++)
        {
            var samples = await works[w].Completion.Task;
            Assert.Equal(works[w].N, samples.Length);
            foreach (var sample in samples)
            {
                Assert.Equal(works[w].Budget, sample.Tokens.Length);
                AssertScoredLikeTheModels(works[w].Tokens, sample);
            }
        }
        Assert.Equal([3], backend.Admissions);
    }

    [Fact]
    public async Task SamplesEnd_AtEos_AtAStopString_OrAtTheirBudget()
    {
        using var batcher = Start(new FakeBackend());
        var eos = Work([1], n: 8, seed: 1, budget: 50, eos: 3);
        var stop = Work([1], n: 8, seed: 2, budget: 50, stop: new StopStrings(["ce"], ids => new string([.. ids.Select(i => (char)('a' + i))])));
        var length = Work([1], n: 2, seed: 3, budget: 7);
        foreach (var w in new[] { eos, stop, length }) batcher.Enqueue(w);

        var eosSamples = await eos.Completion.Task;
        Assert.Contains(eosSamples, s => s.Finish == FinishReason.Eos);
        Assert.All(eosSamples, s => Assert.Equal(s.Finish == FinishReason.Eos, s.Tokens[^1] == 3 && s.Tokens[..^1].All(t => t != 3)));
        var stopSamples = await stop.Completion.Task;
        Assert.Contains(stopSamples, s => s.Finish == FinishReason.Stop);
        foreach (var s in stopSamples.Where(s => s.Finish == FinishReason.Stop))
        {
            string text = new([.. s.Tokens.Select(i => (char)('a' + i))]);
            Assert.EndsWith("ce", text);
            Assert.Equal(text.Length - 2, text.IndexOf("ce", StringComparison.Ordinal)); // stopped at the first occurrence
        }
        Assert.All(await length.Completion.Task, s => Assert.Equal((FinishReason.Length, 7), (s.Finish, s.Tokens.Length)));
    }

    [Fact]
    public async Task ACancelledSample_StopsDecoding_AndCountsTheTokensItDidNotGenerate()
    {
        var backend = new FakeBackend { OnStep = _ => Thread.Sleep(2) };
        var telemetry = new EngineTelemetry(() => 0);
        long notGenerated = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) => { if (instrument.Name == "qservice_sample_cancelled_tokens") l.EnableMeasurementEvents(instrument); };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref notGenerated, value));
        listener.Start();
        using var batcher = Start(backend, telemetry);
        using var cancel = new CancellationTokenSource();
        var work = Work([1, 2], n: 2, seed: 9, budget: 100_000, cancellation: cancel.Token);
        using var registration = cancel.Token.Register(() => work.Completion.TrySetCanceled());
        batcher.Enqueue(work);
        while (Volatile.Read(ref backend.Steps) < 5) await Task.Delay(5);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => work.Completion.Task);

        // Once the decoder has seen the cancellation, no step runs any more.
        while (Interlocked.Read(ref notGenerated) == 0) await Task.Delay(5);
        int steps = Volatile.Read(ref backend.Steps);
        await Task.Delay(100);
        Assert.Equal(steps, Volatile.Read(ref backend.Steps));
        Assert.InRange(Interlocked.Read(ref notGenerated), 2 * (100_000 - steps - 1), 2 * 100_000);
    }

    [Fact]
    public async Task ScoringRequests_AreServedBetweenDecodingSteps()
    {
        var backend = new FakeBackend { OnStep = _ => Thread.Sleep(2) };
        using var batcher = Start(backend);
        var sample = Work([1, 2], n: 1, seed: 5, budget: 2000);
        batcher.Enqueue(sample);
        while (Volatile.Read(ref backend.Steps) < 3) await Task.Delay(5);
        var item = new WorkItem([5, 6, 7], 1, new RequestContext(default), default);
        batcher.Enqueue([item]);
        var scores = await item.Completion.Task;
        Assert.Equal([6f, 7f], scores.Policy.Logprobs);
        Assert.False(sample.Completion.Task.IsCompleted, "the score waited for the whole sample instead of one step");
        await sample.Completion.Task;
    }

    [Fact]
    public async Task AFailingStep_FailsItsSamplesAsInternal_AndTheNextRequestDecodesAfresh()
    {
        var backend = new FakeBackend();
        bool failed = false;
        backend.OnStep = _ =>
        {
            if (backend.Steps == 2 && !failed) { failed = true; throw new InvalidOperationException("native: out of memory"); }
        };
        using var batcher = Start(backend);
        var failing = Work([1, 2], n: 2, seed: 5);
        batcher.Enqueue(failing);
        var error = await Assert.ThrowsAsync<ScoringException>(() => failing.Completion.Task);
        Assert.Equal(ScoringErrorKind.Internal, error.Kind);

        var next = Work([1, 2], n: 2, seed: 5, budget: 4);
        batcher.Enqueue(next);
        foreach (var sample in await next.Completion.Task) AssertScoredLikeTheModels([1, 2], sample);
    }

    [Fact]
    public async Task APromptIsComputedOncePerRequest_AndItsBlocksGoToThePrefixCache()
    {
        var backend = new FakeBackend();
        var batcher = Start(backend, cache: new PrefixCacheOptions { BlockSize = 2, MaxBytes = 1 << 20 });
        var work = Work([1, 2, 3, 4, 5], n: 4, seed: 5, budget: 3);
        batcher.Enqueue(work);
        await work.Completion.Task;
        Assert.Equal(4, backend.LiveStates); // two blocks per model, shared by the four samples
        batcher.Dispose();
        Assert.Equal(0, backend.LiveStates);
    }
}
