using QService.Protos.V1;

namespace QService.Client;

/// <summary>One item scored under several policies (ScoreRequest.Policies): its results in the request's policy order.</summary>
public sealed record PolicyComparison(string Id, IReadOnlyList<ScoredItem> Results)
{
    /// <summary>The item's result under the named policy.</summary>
    public ScoredItem this[string policy] =>
        Results.FirstOrDefault(r => r.Policy == policy) ?? throw new KeyNotFoundException($"no result under policy '{policy}'");
}

public static class ScoreResponseExtensions
{
    /// <summary>
    /// The results of a request that named <paramref name="policies"/> policies, one comparison per item: the server returns them
    /// item-major, each item's results under the policies in the request's order.
    /// </summary>
    public static IReadOnlyList<PolicyComparison> ByItem(this ScoreResponse response, int policies)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(policies, 1);
        if (response.Results.Count % policies != 0)
            throw new ArgumentException($"{response.Results.Count} results are not whole items under {policies} policies", nameof(policies));
        return [.. response.Results.Chunk(policies).Select(run => new PolicyComparison(run[0].Id, run))];
    }

    /// <summary>The policies the results are under, in order of first appearance; the response's default policy when they name none.</summary>
    public static IReadOnlyList<string> PolicyNames(this ScoreResponse response)
    {
        var named = response.Results.Select(r => r.Policy).Where(p => p.Length > 0).Distinct().ToList();
        return named.Count > 0 ? named : [response.PolicyModel];
    }
}
