using QService.Engine.Backends;

namespace QService.Engine.Telemetry;

/// <summary>
/// The tags that say which model a measurement is about: <c>model</c> (policy or reference, as before several
/// policies existed, so dashboards keep working) and <c>policy</c>, the policy's served name (empty for the reference).
/// </summary>
internal static class ModelTags
{
    public static KeyValuePair<string, object?>[] Of(ModelRole role, IReadOnlyList<string> policyNames) =>
    [
        new("model", role.IsReference ? "reference" : "policy"),
        new("policy", role.IsReference ? "" : policyNames[role.PolicyIndex]),
    ];
}
