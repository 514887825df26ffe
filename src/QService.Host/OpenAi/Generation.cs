using System.Text.Json;
using QService.Engine.Sampling;

namespace QService.Host.OpenAi;

/// <summary>The sampling fields that completions and chat completions share, as the engine's Sample options.</summary>
public static class Generation
{
    /// <summary>
    /// temperature 0 is greedy decoding: the engine's top_k 1 (the most likely token, ties to the lower id) at temperature 1,
    /// whatever top_k and top_p say. top_k -1 (vLLM's "off") is 0. Penalties, logit_bias and suffix are refused, not ignored.
    /// </summary>
    public static SampleOptions Options(JsonElement body, ModelChoice model, int maxTokens)
    {
        foreach (var penalty in new[] { "presence_penalty", "frequency_penalty" })
            if (JsonFields.Number(body, penalty) is double p && p != 0) throw Unsupported(penalty);
        if (JsonFields.Get(body, "logit_bias") is { ValueKind: JsonValueKind.Object } bias && bias.EnumerateObject().Any()) throw Unsupported("logit_bias");
        if (JsonFields.String(body, "suffix") is { Length: > 0 }) throw Unsupported("suffix");
        int n = JsonFields.Int(body, "n", 1, int.MaxValue) ?? 1;
        if (JsonFields.Int(body, "best_of", 1, int.MaxValue) is int bestOf && bestOf != n) throw Unsupported("best_of (other than n)");
        double temperature = JsonFields.Number(body, "temperature") ?? 1;
        int topK = JsonFields.Int(body, "top_k", -1, int.MaxValue) ?? 0;
        double topP = JsonFields.Number(body, "top_p") ?? 1;
        long? seed = JsonFields.Integer(body, "seed");
        if (seed < 0) throw OpenAiException.Invalid($"seed is {seed}; give a seed >= 0", "seed");
        bool greedy = temperature == 0;
        return new SampleOptions
        {
            N = n,
            From = model.From,
            Alpha = model.Alpha,
            Temperature = greedy ? 1 : temperature,
            TopK = greedy ? 1 : Math.Max(topK, 0),
            TopP = greedy ? 1 : topP,
            MaxNewTokens = maxTokens,
            Stop = JsonFields.Strings(body, "stop"),
            Seed = seed is long s ? (ulong)s : null,
        };
    }

    static OpenAiException Unsupported(string field) =>
        OpenAiException.Invalid($"{field} is not supported by this server; leave it unset", field.Split(' ')[0]);

    /// <summary>OpenAI's finish_reason: "stop" for the EOS token or a stop string, "length" for max_tokens or the end of the context.</summary>
    public static string FinishReason(FinishReason finish) =>
        finish is Engine.Sampling.FinishReason.Eos or Engine.Sampling.FinishReason.Stop ? "stop" : "length";

    /// <summary>The text up to the first stop string, which OpenAI leaves out (the engine keeps it, and whatever its last token adds).</summary>
    public static string CutAtStop(string text, SampledResponse sample, IReadOnlyList<string> stops)
    {
        if (sample.Finish != Engine.Sampling.FinishReason.Stop) return text;
        int cut = stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(text.Length).Min();
        return text[..cut];
    }
}
