namespace QService.Engine;

/// <summary>
/// What is wrong with a configuration, as sentences that name the setting and what to set it to. The host
/// checks these at start-up (options validation, exit code 1); the engine refuses them too.
/// </summary>
public static class OptionsProblems
{
    public static IEnumerable<string> Of(ModelOptions m)
    {
        if (m.Threads < 0) yield return $"Models:Threads is {m.Threads}; use 0 (one per physical core) or a positive count";
        if (m.Beta is double beta && (!double.IsFinite(beta) || beta <= 0)) yield return $"Models:Beta is {beta}; it must be a finite number > 0";
        if (Runtime.Torch.TorchEnvironment.TryParseDtype(m.Dtype) is null)
            yield return $"Models:Dtype is '{m.Dtype}'; use float32, bfloat16 or float16";
        string device = m.Device.Trim().ToLowerInvariant();
        if (device is not ("auto" or "" or "cpu" or "cuda")
            && !(device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device[5..], out int n) && n >= 0))
            yield return $"Models:Device is '{m.Device}'; use auto, cpu, cuda or cuda:N";
        foreach (var problem in PolicyProblems(m)) yield return problem;
    }

    static IEnumerable<string> PolicyProblems(ModelOptions m)
    {
        if (m.Policies.Count == 0) yield break;
        if (!string.IsNullOrWhiteSpace(m.PolicyPath))
            yield return "Models:PolicyPath and Models:Policies are both set; give one policy as PolicyPath (--policy DIR), or name them all in " +
                "Policies (--policy NAME=DIR, repeated)";
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < m.Policies.Count; i++)
        {
            var (name, path) = (m.Policies[i].Name ?? "", m.Policies[i].Path ?? "");
            if (!ValidPolicyName(name))
                yield return $"Models:Policies:{i}:Name is '{(name.Length <= 64 ? name : name[..64] + "…")}'; a policy name is 1 to 64 letters, " +
                    "digits, '.', '_' or '-'";
            else if (!seen.Add(name)) yield return $"Models:Policies:{i}:Name '{name}' is given twice; name each policy once";
            if (string.IsNullOrWhiteSpace(path)) yield return $"Models:Policies:{i}:Path is empty; give the policy's folder (or hub id)";
        }
    }

    /// <summary>1 to 64 of [A-Za-z0-9._-]: safe in a metric label, a log line and a command line.</summary>
    public static bool ValidPolicyName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    public static IEnumerable<string> Of(BatchingOptions b)
    {
        if (b.MaxBatchTokens < 2) yield return $"Batching:MaxBatchTokens is {b.MaxBatchTokens}; it must be >= 2 (one token through two models)";
        if (b.MaxBatchSequences < 1) yield return $"Batching:MaxBatchSequences is {b.MaxBatchSequences}; it must be >= 1";
        if (b.MaxQueueItems < 1) yield return $"Batching:MaxQueueItems is {b.MaxQueueItems}; it must be >= 1";
        if (!double.IsFinite(b.MaxQueueDelayMs) || b.MaxQueueDelayMs < 0) yield return $"Batching:MaxQueueDelayMs is {b.MaxQueueDelayMs}; it must be >= 0";
        if (!double.IsFinite(b.MaxPaddingFraction) || b.MaxPaddingFraction < 0)
            yield return $"Batching:MaxPaddingFraction is {b.MaxPaddingFraction}; it must be >= 0";
        if (b.FailuresBeforeUnready < 1) yield return $"Batching:FailuresBeforeUnready is {b.FailuresBeforeUnready}; it must be >= 1";
        if (!double.IsFinite(b.MaxPassSeconds) || b.MaxPassSeconds <= 0) yield return $"Batching:MaxPassSeconds is {b.MaxPassSeconds}; it must be > 0";
        if (b.MaxRunningSamples < 1) yield return $"Batching:MaxRunningSamples is {b.MaxRunningSamples}; it must be >= 1";
    }

    public static IEnumerable<string> Of(RequestLimits l, BatchingOptions b)
    {
        if (l.MaxItemsPerRequest < 1) yield return $"Limits:MaxItemsPerRequest is {l.MaxItemsPerRequest}; it must be >= 1";
        if (l.MaxTokensPerRequest < 1) yield return $"Limits:MaxTokensPerRequest is {l.MaxTokensPerRequest}; it must be >= 1";
        if (b.MaxQueueTokens < l.MaxTokensPerRequest)
            yield return $"Batching:MaxQueueTokens ({b.MaxQueueTokens}) is less than Limits:MaxTokensPerRequest ({l.MaxTokensPerRequest}): " +
                "a request at the limit could never be queued";
        if (!double.IsFinite(l.StreamIdleSeconds) || l.StreamIdleSeconds <= 0)
            yield return $"Limits:StreamIdleSeconds is {l.StreamIdleSeconds}; it must be > 0";
        if (l.MaxStreamMessages < 1) yield return $"Limits:MaxStreamMessages is {l.MaxStreamMessages}; it must be >= 1";
        if (l.MaxSamplesPerRequest < 1) yield return $"Limits:MaxSamplesPerRequest is {l.MaxSamplesPerRequest}; it must be >= 1";
        if (l.MaxStopStrings < 0) yield return $"Limits:MaxStopStrings is {l.MaxStopStrings}; it must be >= 0";
        if (l.MaxStopLength < 1) yield return $"Limits:MaxStopLength is {l.MaxStopLength}; it must be >= 1";
        if (l.MaxSamplesPerRequest > b.MaxQueueItems)
            yield return $"Limits:MaxSamplesPerRequest ({l.MaxSamplesPerRequest}) is more than Batching:MaxQueueItems ({b.MaxQueueItems}): " +
                "such a request could never be queued";
        if (l.MaxItemsPerRequest > b.MaxQueueItems)
            yield return $"Limits:MaxItemsPerRequest ({l.MaxItemsPerRequest}) is more than Batching:MaxQueueItems ({b.MaxQueueItems}): " +
                "such a request could never be queued";
    }

    public static IEnumerable<string> Of(PrefixCacheOptions p)
    {
        if (p.BlockSize < 1) yield return $"PrefixCache:BlockSize is {p.BlockSize}; it must be >= 1 (16 is a good size)";
        if (p.MaxBytes is < 0) yield return $"PrefixCache:MaxBytes is {p.MaxBytes}; it must be >= 0 (or empty for 15 % of memory)";
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem, if there are any.</summary>
    public static void ThrowIfAny(ModelOptions m, BatchingOptions b, RequestLimits l, PrefixCacheOptions p) => ThrowIfAny(Of(m).Concat(OfEngine(b, l, p)));

    /// <summary>The same without the model options, for an engine whose models come from a factory (a fake, in tests).</summary>
    public static void ThrowIfAny(BatchingOptions b, RequestLimits l, PrefixCacheOptions p) => ThrowIfAny(OfEngine(b, l, p));

    static IEnumerable<string> OfEngine(BatchingOptions b, RequestLimits l, PrefixCacheOptions p) => Of(b).Concat(Of(l, b)).Concat(Of(p));

    static void ThrowIfAny(IEnumerable<string> problems)
    {
        var all = problems.ToList();
        if (all.Count > 0) throw new ArgumentException("Invalid configuration: " + string.Join("; ", all));
    }
}
