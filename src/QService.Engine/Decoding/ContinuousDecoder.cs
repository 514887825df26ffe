using QService.Engine.Backends;
using QService.Engine.Caching;
using QService.Engine.Telemetry;

namespace QService.Engine.Decoding;

/// <summary>
/// Decodes the running samples together, one token per sample per <see cref="Iterate"/> (continuous
/// batching, as in vLLM and TGI): new requests join at any iteration, finished or cancelled samples leave at
/// once, so the batch never waits for its longest member. Samples of one policy decode together with the
/// reference (<see cref="DecodeGroup"/>): both models run every step, so each token's credit comes for free. A
/// sample whose steps ran in another RoPE regime than its whole sequence is scored again when it finishes (DecodeGroup.Rescore).
/// Owner thread only: the batcher calls it between scoring passes.
/// </summary>
internal sealed class ContinuousDecoder(EngineTelemetry telemetry, ModelCaches? caches, IReadOnlyList<string> policyNames) : IDisposable
{
    /// <summary>One group per policy that has samples, in policy order.</summary>
    readonly SortedDictionary<int, DecodeGroup> _groups = [];

    public int Running => _groups.Values.Sum(g => g.Running);

    /// <summary>Admits new requests, then draws one token for every running sample, lets finished ones leave and steps the rest.</summary>
    public void Iterate(IScoringBackend backend, IReadOnlyList<SampleWave> admitted)
    {
        foreach (var joining in admitted.Where(w => !w.Work.IsAbandoned).GroupBy(w => w.Work.Policy))
        {
            if (joining.Key >= policyNames.Count)
                throw new InvalidOperationException($"policy {joining.Key} is not served. This is a bug: requests are validated.");
            if (!_groups.TryGetValue(joining.Key, out var group))
                _groups[joining.Key] = group = new DecodeGroup(ModelRole.OfPolicy(joining.Key), telemetry, caches);
            group.Admit(backend, [.. joining]);
        }
        foreach (var group in _groups.Values) group.Iterate(backend);
    }

    /// <summary>A failed step leaves the batches in an unknown state: every running request fails, and the next one starts afresh.</summary>
    public void Fail(Exception error, IEnumerable<SampleWave> admitted)
    {
        foreach (var work in _groups.Values.SelectMany(g => g.Works).Concat(admitted.Select(w => w.Work)).Distinct())
            work.Completion.TrySetException(error);
        Dispose();
    }

    public void Dispose()
    {
        foreach (var group in _groups.Values) group.Clear();
        _groups.Clear();
    }
}
