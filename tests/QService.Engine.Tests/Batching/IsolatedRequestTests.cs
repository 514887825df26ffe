using QService.Engine.Backends;
using QService.Engine.Batching;

namespace QService.Engine.Tests.Batching;

/// <summary>
/// Reproducible (isolated) requests: batched alone and started from an empty cache of their own, so that their numbers depend on
/// them only. The fake backend's numbers shift with the pass they share and with what came from the cache, as float results do.
/// </summary>
public class IsolatedRequestTests
{
    static readonly int[] Prompt = [.. Enumerable.Range(1, 9)];

    /// <summary>A chosen/rejected pair after one prompt: the shape `qservice eval` sends.</summary>
    static WorkItem[] Pair(bool isolated, int seed)
    {
        var request = new RequestContext(default, $"caller-{seed}", isolated);
        return [new([.. Prompt, 100 + seed, 101], Prompt.Length, request, default), new([.. Prompt, 200 + seed], Prompt.Length, request, default)];
    }

    static WorkItem[] Others(int count) => [.. Enumerable.Range(0, count).Select(k =>
        new WorkItem([.. Prompt, 50 + k, 51, 52, 53], 3, new RequestContext(default, $"other-{k}"), default))];

    static async Task<float[][]> Numbers(IEnumerable<WorkItem> items) =>
        [.. (await Task.WhenAll(items.Select(i => i.Completion.Task))).SelectMany(r => new[] { r.Policy.Logprobs, r.Reference.Logprobs })];

    [Fact]
    public async Task AnIsolatedRequest_GetsTheSameBits_AloneOnAColdCache_BesideOtherWork_AndAfterOthersCachedItsPrompt()
    {
        var backend = new FakeBackend { PassNoise = true };
        var (batcher, telemetry) = DynamicBatcherTests.Create(() => backend, cache: DynamicBatcherTests.Cache());
        using (batcher) using (telemetry)
        {
            batcher.Start();
            var alone = Pair(isolated: true, seed: 0);
            batcher.Enqueue(alone);
            var first = await Numbers(alone);

            // Others first (they cache the prompt), then the same request queued among others.
            var warm = Others(3);
            batcher.Enqueue(warm);
            await Numbers(warm);
            WorkItem[] before = Others(2), again = Pair(isolated: true, seed: 0), after = Others(4);
            batcher.Enqueue([.. before, .. again, .. after]);
            Assert.Equal(first, await Numbers(again));
            await Numbers([.. before, .. after]);

            // Its passes held its own sequences only.
            var mine = again.Select(i => i.Tokens).ToList();
            Assert.All(backend.Calls.Where(c => c.Sequences.Any(s => mine.Any(m => m.SequenceEqual(s)))),
                c => Assert.All(c.Sequences, s => Assert.Contains(mine, m => m.AsSpan().StartsWith(s))));

            // The same request not isolated, in the same circumstances, does get other numbers: the fake's passes depend on what they share.
            WorkItem[] shared = Pair(isolated: false, seed: 0), crowd = Others(2);
            batcher.Enqueue([.. crowd, .. shared]);
            Assert.NotEqual(first, await Numbers(shared));
            await Numbers(crowd);
        }
        Assert.Equal(0, backend.LiveStates); // the isolated batches' own caches were freed with them
    }

    [Fact]
    public async Task AnIsolatedRequest_StillComputesThePromptItsItemsShareOnce()
    {
        var backend = new FakeBackend();
        var (batcher, telemetry) = DynamicBatcherTests.Create(() => backend, cache: DynamicBatcherTests.Cache());
        using (batcher) using (telemetry)
        {
            var pair = Pair(isolated: true, seed: 1);
            batcher.Enqueue(pair);
            batcher.Start();
            await Numbers(pair);
            var policyPasses = backend.Inputs.Where(p => p.Role == ModelRole.Policy).ToList();
            Assert.Equal(2, policyPasses.Count);
            Assert.Equal(Prompt[..8], policyPasses[0].Inputs.Single().Tokens); // the shared prompt's whole blocks, once
            Assert.All(policyPasses[1].Inputs, i => Assert.Equal(8, i.CachedLength));
        }
    }
}
