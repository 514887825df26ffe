using System.Diagnostics;
using System.Security.Cryptography;
using QService.Engine.Batching;
using QService.Engine.Decoding;
using QService.Engine.Sampling;

namespace QService.Engine;

public sealed partial class ScoringEngine
{
    /// <summary>
    /// Samples n continuations of an item's prompt and partial response from the policy, the reference or the
    /// guided mix, each scored by both models as it is generated. Validation errors name the field.
    /// </summary>
    public async Task<SampleResult> SampleAsync(ScoreItemInput item, SampleOptions options, CancellationToken cancellation, string caller = "")
    {
        var models = Models;
        double beta = CheckBeta(options.Beta, models);
        var distribution = CheckSampling(options, models);
        CheckStepDelimiter(options.StepDelimiter, models);
        var stop = CheckStop(options.Stop, models);
        int policy = PolicyChoice.ForSample(item, models);
        var prepared = (await PrepareAllAsync([item], models, new ScoreOptions(), PreparationRules.Sample, cancellation).ConfigureAwait(false))[0];
        int room = models.MaxContext - prepared.Tokens.Length;
        if (options.MaxNewTokens < 0) throw ScoringException.Invalid($"max_new_tokens is {options.MaxNewTokens}; give a count > 0, " +
            "or 0 to sample until EOS or the end of the context");
        if (options.MaxNewTokens > room)
            throw ScoringException.Invalid($"max_new_tokens is {options.MaxNewTokens}, but the prompt and partial response ({prepared.Tokens.Length} tokens) " +
                $"leave room for {room} in the model context of {models.MaxContext}; ask for at most {room}");
        var (budget, budgetReason) = options.MaxNewTokens > 0 ? (options.MaxNewTokens, FinishReason.Length) : (room, FinishReason.Context);
        ulong seed = options.Seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

        var work = new SampleWork(prepared.Tokens, options.N, distribution, seed, budget, budgetReason, models.EosTokenId, stop,
            new RequestContext(Activity.Current?.Context ?? default, caller), cancellation, policy);
        using var registration = cancellation.Register(() => work.Completion.TrySetCanceled(cancellation));
        _batcher.Enqueue(work);
        var generated = await work.Completion.Task.ConfigureAwait(false);
        string policyName = models.Info.Policies[policy].Name;
        var samples = generated.Select(g => Scored(prepared, g, beta, options.StepDelimiter, models, policyName)).ToArray();
        return new SampleResult(samples, seed, prepared.Tokens.Length, beta);
    }

    SampledResponse Scored(PreparedItem prepared, GeneratedSample sample, double beta, string? delimiter, ServedModels models, string policy)
    {
        var tokenizer = models.Tokenizer;
        string text = tokenizer?.Decode(sample.Tokens, skipSpecialTokens: true) ?? "";
        int[]? stepEnds = null;
        if (delimiter != null)
        {
            var (decoded, ends) = DecodedEnds(tokenizer!, sample.Tokens);
            stepEnds = StepSplitter.StepEnds(decoded, ends, delimiter);
        }
        // Scored as the continuation of the prompt and partial response: its arrays run over the new tokens.
        var item = new PreparedItem(prepared.Id, [.. prepared.Tokens, .. sample.Tokens], prepared.Tokens.Length, null, stepEnds);
        return new SampledResponse(Finish(item, sample.Policy, sample.Reference, beta) with { Policy = policy }, text, sample.Finish);
    }

    /// <summary>The distribution the options ask for; each bad field is named with what to fix.</summary>
    TokenDistribution CheckSampling(SampleOptions o, ServedModels models)
    {
        if (o.N < 1) throw ScoringException.Invalid($"n is {o.N}; ask for at least 1 sample");
        if (o.N > _limits.MaxSamplesPerRequest)
            throw ScoringException.Invalid($"n is {o.N}, more than the limit of {_limits.MaxSamplesPerRequest} samples per request; split it");
        if (!Enum.IsDefined(o.From)) throw ScoringException.Invalid($"sample_from {(int)o.From} is not POLICY, REFERENCE or GUIDED");
        if (o.From != SampleFrom.Guided && o.Alpha is not null)
            throw ScoringException.Invalid("alpha is only used with sample_from GUIDED; leave it unset, or sample from GUIDED");
        if (o.From == SampleFrom.Guided && o.Alpha is not double)
            throw ScoringException.Invalid("sample_from GUIDED needs alpha: 0 is the reference, 1 the policy, above 1 leans further toward high reward");
        if (o.Alpha is double a && (!double.IsFinite(a) || a < 0)) throw ScoringException.Invalid($"alpha is {a}; it must be a finite number >= 0");
        if (!double.IsFinite(o.Temperature) || o.Temperature <= 0)
            throw ScoringException.Invalid($"temperature is {o.Temperature}; it must be a finite number > 0 (1 samples the distribution as it is)");
        if (!double.IsFinite(o.TopP) || o.TopP <= 0 || o.TopP > 1) throw ScoringException.Invalid($"top_p is {o.TopP}; it must be in (0, 1] (1 turns it off)");
        int vocab = models.VocabSize;
        if (o.TopK < 0 || o.TopK > vocab) throw ScoringException.Invalid($"top_k is {o.TopK}; it must be between 0 (off) and the vocabulary size {vocab}");
        double alpha = o.From switch { SampleFrom.Policy => 1, SampleFrom.Reference => 0, _ => o.Alpha!.Value };
        return new TokenDistribution(alpha, o.Temperature, o.TopK, o.TopP);
    }

    StopStrings? CheckStop(IReadOnlyList<string> stops, ServedModels models)
    {
        if (stops.Count == 0) return null;
        if (stops.Count > _limits.MaxStopStrings)
            throw ScoringException.Invalid($"stop has {stops.Count} strings, more than the limit of {_limits.MaxStopStrings}");
        for (int i = 0; i < stops.Count; i++)
        {
            if (stops[i].Length == 0) throw ScoringException.Invalid($"stop[{i}] is empty; give the text that ends a sample, or remove it");
            if (stops[i].Length > _limits.MaxStopLength)
                throw ScoringException.Invalid($"stop[{i}] has {stops[i].Length} characters, more than the limit of " +
                    $"{_limits.MaxStopLength}; use a shorter stop string");
        }
        var tokenizer = models.Tokenizer ?? throw ScoringException.Invalid("stop strings need the generated text, but this server has no tokenizer; omit stop");
        return new StopStrings(stops, ids => tokenizer.Decode(ids, skipSpecialTokens: true));
    }
}
