using System.Diagnostics.Metrics;
using QService.Engine.Backends;
using QService.Engine.Telemetry;

namespace QService.Engine.Caching;

/// <summary>
/// One prefix cache per served model: each policy's own and the reference's, which every policy's items share
/// (the reference computes a prefix once, whichever policy asked for it). The budget is split evenly among them.
/// Owner thread only.
/// </summary>
internal sealed class ModelCaches : IDisposable
{
    readonly PrefixCache[] _policies;

    public PrefixCache Reference { get; }

    public int BlockSize => Reference.BlockSize;

    public ModelCaches(int policyCount, long maxBytes, int blockSize)
    {
        long share = maxBytes / (policyCount + 1);
        _policies = [.. Enumerable.Range(0, policyCount).Select(_ => new PrefixCache(share, blockSize))];
        Reference = new PrefixCache(share, blockSize);
    }

    public PrefixCache For(ModelRole role) => role.IsReference ? Reference : _policies[role.PolicyIndex];

    /// <summary>Whether every model that scores the item holds its first <paramref name="length"/> tokens already, in the item's RoPE regime.</summary>
    public bool AllHold(int[] tokens, int length, IEnumerable<int> policies, Func<ModelRole, int> regimeOf) =>
        Reference.CachedLength(tokens, length, regimeOf(ModelRole.Reference)) >= length
        && policies.All(p => _policies[p].CachedLength(tokens, length, regimeOf(ModelRole.OfPolicy(p))) >= length);

    /// <summary>Bytes per cache, labelled by model (policy or reference) and the policy's name.</summary>
    public IEnumerable<Measurement<long>> Bytes(IReadOnlyList<string> policyNames) =>
    [
        .. _policies.Select((c, p) => new Measurement<long>(c.Bytes, ModelTags.Of(ModelRole.OfPolicy(p), policyNames))),
        new Measurement<long>(Reference.Bytes, ModelTags.Of(ModelRole.Reference, policyNames)),
    ];

    public void Dispose()
    {
        foreach (var cache in _policies) cache.Dispose();
        Reference.Dispose();
    }
}
