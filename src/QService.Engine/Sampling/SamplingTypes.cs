namespace QService.Engine.Sampling;

/// <summary>Which distribution a sample's tokens are drawn from.</summary>
public enum SampleFrom { Policy, Reference, Guided }

/// <summary>Why a sample ended: its EOS token, a stop string, max_new_tokens, or the model context.</summary>
public enum FinishReason { Eos, Stop, Length, Context }

/// <summary>
/// How to sample. With <see cref="SampleFrom.Guided"/>, p(v) ∝ pi_ref(v)^(1−alpha) · pi(v)^alpha: alpha 0 is the
/// reference, 1 the policy, and alpha > 1 leans further toward high implicit reward (log p = log pi_ref +
/// (alpha/beta)·credit + const). Temperature, then top_k, then top_p reshape it, in HuggingFace's order.
/// </summary>
public sealed record SampleOptions
{
    /// <summary>Continuations to sample; they share the prompt's computation.</summary>
    public int N { get; init; } = 1;
    public SampleFrom From { get; init; } = SampleFrom.Policy;
    /// <summary>The guidance exponent; only with <see cref="SampleFrom.Guided"/>.</summary>
    public double? Alpha { get; init; }
    public double Temperature { get; init; } = 1;
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches top_p; 1 = off.</summary>
    public double TopP { get; init; } = 1;
    /// <summary>Keep the top_k most likely tokens; 0 = off.</summary>
    public int TopK { get; init; }
    /// <summary>Most tokens to generate; 0: until EOS, a stop string or the end of the context.</summary>
    public int MaxNewTokens { get; init; }
    /// <summary>A sample ends once its generated text contains one of these (included in the sample).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>The same seed gives the same samples; none: a random one, returned with the result.</summary>
    public ulong? Seed { get; init; }
    public double? Beta { get; init; }
    public string? StepDelimiter { get; init; }
}

/// <summary>One sampled continuation: its scores (as Score gives them for these tokens), its text and why it ended.</summary>
public sealed record SampledResponse(ItemScores Scores, string Text, FinishReason Finish);

/// <summary>A Sample call's continuations, with the seed that reproduces them.</summary>
public sealed record SampleResult(IReadOnlyList<SampledResponse> Samples, ulong Seed, int PrefixTokens, double Beta);
