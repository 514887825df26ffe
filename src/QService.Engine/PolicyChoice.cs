namespace QService.Engine;

/// <summary>
/// Which served policies score each item of a request, by index: the request's <c>policies</c> for every item, else each
/// item's own <c>policy</c> (the default, first, when it names none). Bad names are INVALID_ARGUMENT naming the field.
/// </summary>
internal static class PolicyChoice
{
    public static int[][] ForScore(IReadOnlyList<ScoreItemInput> items, IReadOnlyList<string>? requested, ServedModels models)
    {
        if (requested is not { Count: > 0 }) return PerItem(items, models);
        var chosen = new int[requested.Count];
        for (int k = 0; k < requested.Count; k++)
        {
            chosen[k] = Index(requested[k], $"policies[{k}]", models);
            if (Array.IndexOf(chosen, chosen[k], 0, k) is int earlier and >= 0)
                throw ScoringException.Invalid($"policies[{k}] repeats '{Shown(requested[k])}' (policies[{earlier}]); name each policy once");
        }
        for (int i = 0; i < items.Count; i++)
            if (!string.IsNullOrEmpty(items[i].Policy))
                throw ScoringException.Invalid($"items[{i}].policy is set and so is the request's policies; the request's policies score every " +
                    "item, so leave items' policy unset, or omit policies");
        return [.. items.Select(_ => chosen)];
    }

    public static int[][] PerItem(IReadOnlyList<ScoreItemInput> items, ServedModels models) =>
        [.. items.Select((item, i) => new[] { Index(item.Policy, $"items[{i}].policy", models) })];

    /// <summary>Sample's one item (SampleRequest.item).</summary>
    public static int ForSample(ScoreItemInput item, ServedModels models) => Index(item.Policy, "item.policy", models);

    static int Index(string? name, string field, ServedModels models)
    {
        int index = models.PolicyIndex(name);
        if (index >= 0) return index;
        var served = models.Info.Policies;
        throw ScoringException.Invalid($"{field} is '{Shown(name!)}', which this server does not serve; the served policies are " +
            $"{string.Join(", ", served.Select(p => $"'{p.Name}'"))} (leave it empty for the default, '{served[0].Name}')");
    }

    /// <summary>A name as the error shows it: at most 64 characters, so that a huge name is not echoed back.</summary>
    static string Shown(string name) => name.Length <= 64 ? name : name[..64] + "…";
}
