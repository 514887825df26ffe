using System.Text.Json;
using QService.Engine;
using QService.Engine.Sampling;

namespace QService.Host.OpenAi;

/// <summary>
/// What a request's <c>model</c> picks: which distribution generates and whose log-probabilities are returned (a served policy,
/// the reference, or the guided mix with <c>alpha</c>), and the policy of the pair whose credits come with each choice.
/// </summary>
public sealed record ModelChoice(string Id, string Policy, SampleFrom From, double? Alpha)
{
    public const string Reference = "reference";
    public const string Guided = "guided";

    /// <summary>
    /// <c>model</c> absent: the default (first) policy. A policy's name wins over the reserved ids "reference" and "guided". An
    /// optional <c>policy</c> field names the pair's policy for the reference and the guided mix (default: the first).
    /// </summary>
    public static ModelChoice Resolve(JsonElement body, ServedPair info)
    {
        var policies = info.Policies;
        string id = JsonFields.String(body, "model") ?? policies[0].Name;
        double? alpha = JsonFields.Number(body, "alpha");
        string? policy = JsonFields.String(body, "policy");
        if (policies.Any(p => p.Name == id))
        {
            if (policy != null && policy != id)
                throw OpenAiException.Invalid($"policy '{policy}' is only for the models '{Reference}' and '{Guided}'; model '{id}' is a policy", "policy");
            return alpha is null ? new ModelChoice(id, id, SampleFrom.Policy, null) : throw AlphaWithout(id);
        }
        if (id != Reference && id != Guided)
            throw new OpenAiException(404, $"the model '{id}' does not exist; this server serves {string.Join(", ", Ids(info).Select(i => $"'{i}'"))}",
                "model", "model_not_found");
        if (policy != null && policies.All(p => p.Name != policy))
            throw OpenAiException.Invalid($"policy '{policy}' is not served; the policies are {string.Join(", ", policies.Select(p => p.Name))}", "policy");
        policy ??= policies[0].Name;
        if (id == Reference) return alpha is null ? new ModelChoice(id, policy, SampleFrom.Reference, null) : throw AlphaWithout(id);
        return alpha is double a
            ? new ModelChoice(id, policy, SampleFrom.Guided, a)
            : throw OpenAiException.Invalid("model 'guided' needs alpha: 0 is the reference, 1 the policy, above 1 leans further toward high reward",
                "alpha");
    }

    static OpenAiException AlphaWithout(string id) =>
        OpenAiException.Invalid($"alpha is only for model '{Guided}'; model '{id}' takes none", "alpha");

    /// <summary>Every model id, as /v1/models lists them: the policies, then the reference and the guided mix unless a policy took their name.</summary>
    public static IEnumerable<string> Ids(ServedPair info)
    {
        var names = info.Policies.Select(p => p.Name).ToList();
        return names.Concat(new[] { Reference, Guided }.Where(r => !names.Contains(r)));
    }

    /// <summary>A token's log-probability under this model, from both models' log-probabilities: the guided mix needs its normaliser.</summary>
    public double Logprob(float policy, float reference, double guidedLogNormaliser) => From switch
    {
        SampleFrom.Policy => policy,
        SampleFrom.Reference => reference,
        _ => Mix(policy, reference) - guidedLogNormaliser,
    };

    /// <summary>(1−alpha)·log pi_ref + alpha·log pi, as the sampler mixes them (alpha 0 and 1 take one model alone).</summary>
    public double Mix(float policy, float reference) =>
        Alpha == 0 ? reference : Alpha == 1 ? policy : (1 - Alpha!.Value) * reference + Alpha.Value * policy;
}
