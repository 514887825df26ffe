using QService.Engine.Sampling;
using static QService.Engine.Tests.Scoring.FakeEngine;

namespace QService.Engine.Tests.Scoring;

/// <summary>Every kind of bad input to Score, NextTokens and Sample gets its kind and a message that says what to fix, and the engine keeps serving.</summary>
public class ScoringEngineValidationTests
{
    static readonly ScoreItemInput Partial = Ids([1, 2, 3], [4, 5]);
    static readonly ScoreItemInput PromptOnly = new() { Id = "p", PromptTokenIds = [1, 2, 3] };

    public static TheoryData<string, ScoringErrorKind, string> ScoreCases => new()
    {
        { "empty", ScoringErrorKind.InvalidArgument, "no items" },
        { "neither", ScoringErrorKind.InvalidArgument, "not neither" },
        { "both", ScoringErrorKind.InvalidArgument, "not both" },
        { "emptyResponse", ScoringErrorKind.InvalidArgument, "response_token_ids is empty" },
        { "textWithoutTokenizer", ScoringErrorKind.InvalidArgument, "send prompt_token_ids" },
        { "idOutOfVocab", ScoringErrorKind.InvalidArgument, "item 1 ('bad'): response token at position 2 has id 320, outside the vocabulary [0, 320)" },
        { "negativeId", ScoringErrorKind.InvalidArgument, "prompt token at position 0 has id -1" },
        { "tooLong", ScoringErrorKind.InvalidArgument, "= 130 tokens, longer than the model context of 128" },
        { "tooManyItems", ScoringErrorKind.ResourceExhausted, "65 items, more than the limit of 64" },
        { "tooManyTokens", ScoringErrorKind.ResourceExhausted, "more than the limit of 4000" },
        { "betaZero", ScoringErrorKind.InvalidArgument, "beta must be a finite number > 0" },
        { "betaNegative", ScoringErrorKind.InvalidArgument, "beta must be a finite number > 0" },
        { "betaNaN", ScoringErrorKind.InvalidArgument, "beta must be a finite number > 0" },
        { "betaInfinite", ScoringErrorKind.InvalidArgument, "beta must be a finite number > 0" },
        { "emptyPrompt", ScoringErrorKind.InvalidArgument, "the prompt has no tokens" },
        { "betaOverflows", ScoringErrorKind.InvalidArgument, "makes the credits overflow float32" },
        { "appendEosWithoutEos", ScoringErrorKind.InvalidArgument, "append_eos is set but the model defines no end-of-sequence token" },
        { "emptyStepDelimiter", ScoringErrorKind.InvalidArgument, "step_delimiter is empty" },
        { "longStepDelimiter", ScoringErrorKind.InvalidArgument, "step_delimiter has 65 characters, more than 64" },
        { "stepsWithoutTokenizer", ScoringErrorKind.InvalidArgument, "step_delimiter needs the response text, but this server has no tokenizer" },
    };

    static (ScoreItemInput[] Items, ScoreOptions Options) BuildScore(string kind) => kind switch
    {
        "empty" => ([], new()),
        "neither" => ([new ScoreItemInput { Id = "n" }], new()),
        "both" => ([new ScoreItemInput { Prompt = "a", Response = "b", PromptTokenIds = [1], ResponseTokenIds = [2] }], new()),
        "emptyResponse" => ([Ids([1, 2], [])], new()),
        "textWithoutTokenizer" => ([new ScoreItemInput { Prompt = "hello", Response = "world" }], new()),
        "idOutOfVocab" => ([Ids([1, 2], [3]), Ids([1, 2], [3, 4, 320], "bad")], new()),
        "negativeId" => ([Ids([-1, 2], [3])], new()),
        "tooLong" => ([Ids([.. Enumerable.Repeat(5, 100)], [.. Enumerable.Repeat(6, 30)])], new()),
        "tooManyItems" => ([.. Enumerable.Range(0, 65).Select(_ => Ids([1], [2]))], new()),
        "tooManyTokens" => ([.. Enumerable.Range(0, 40).Select(_ => Ids([.. Enumerable.Repeat(1, 60)], [.. Enumerable.Repeat(2, 60)]))], new()),
        "betaZero" => ([Ids([1], [2])], new(Beta: 0)),
        "betaNegative" => ([Ids([1], [2])], new(Beta: -0.5)),
        "betaNaN" => ([Ids([1], [2])], new(Beta: double.NaN)),
        "betaInfinite" => ([Ids([1], [2])], new(Beta: double.PositiveInfinity)),
        "emptyPrompt" => ([Ids([], [2, 3])], new()),
        // Finite, but beta x log-ratio (2 x token id on the fake) no longer fits a float32 credit.
        "betaOverflows" => ([Ids([1, 2, 3, 4], [5, 6, 7, 8, 9, 10])], new(Beta: 3e38)),
        "appendEosWithoutEos" => ([Ids([1], [2]) with { AppendEos = true }], new()),
        "emptyStepDelimiter" => ([Ids([1], [2])], new(StepDelimiter: "")),
        "longStepDelimiter" => ([Ids([1], [2])], new(StepDelimiter: new string('.', 65))),
        "stepsWithoutTokenizer" => ([Ids([1], [2])], new(StepDelimiter: "\n")),
        _ => throw new ArgumentException(kind),
    };

    [Theory, MemberData(nameof(ScoreCases))]
    public async Task Score_BadRequest_GetsItsKindAndMessage_AndTheEngineKeepsServing(string kind, ScoringErrorKind expected, string message)
    {
        using var engine = await StartAsync(models: kind == "appendEosWithoutEos" ? Models with { Info = Models.Info with { EosTokenId = null } } : null);
        var (items, options) = BuildScore(kind);
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.ScoreAsync(items, options, default));
        Assert.Equal(expected, error.Kind);
        Assert.Contains(message, error.Message);

        var good = await engine.ScoreAsync([Ids([1, 2, 3], [4, 5])], new(), default);
        Assert.Equal(2, good[0].Credits.Length);
    }

    public static TheoryData<string, string> NextTokensCases => new()
    {
        { "negativeTopK", "top_k is -1; it must be between 1 and the vocabulary size 320" },
        { "topKOverVocab", "top_k is 321" },
        { "neither", "neither top_k nor candidate_ids is set" },
        { "both", "top_k and candidate_ids are both set" },
        { "candidateOutOfVocab", "candidate_ids[1] is 320, outside the vocabulary [0, 320)" },
        { "appendEos", "append_eos ends the response" },
        { "fillsContext", "there is no room for a next token" },
        { "badRankBy", "rank_by 7 is not POLICY, REFERENCE or CREDIT" },
        { "betaOverflowsOnCandidates", "makes the credits overflow float32" },
    };

    static (ScoreItemInput Item, NextTokenOptions Options) BuildNextTokens(string kind) => kind switch
    {
        "negativeTopK" => (Partial, new(-1, null)),
        "topKOverVocab" => (Partial, new(Vocab + 1, null)),
        "neither" => (Partial, new(0, null)),
        "both" => (Partial, new(2, [1])),
        "candidateOutOfVocab" => (Partial, new(0, [1, Vocab])),
        "appendEos" => (Partial with { AppendEos = true }, new(1, null)),
        "fillsContext" => (Ids([1], [.. Enumerable.Repeat(5, Context - 1)]), new(1, null)),
        "badRankBy" => (Partial, new(1, null, (RankBy)7)),
        // Finite, but beta x log-ratio no longer fits a float32 credit of a candidate (the partial response is empty).
        "betaOverflowsOnCandidates" => (PromptOnly, new(50, null, Beta: 3e38)),
        _ => throw new ArgumentException(kind),
    };

    [Theory, MemberData(nameof(NextTokensCases))]
    public async Task NextTokens_BadInput_IsInvalidArgumentNamingTheField(string kind, string message)
    {
        using var engine = await StartAsync();
        var (item, options) = BuildNextTokens(kind);
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.NextTokensAsync([item], options, default));
        Assert.Equal(ScoringErrorKind.InvalidArgument, error.Kind);
        Assert.Contains(message, error.Message);

        Assert.Single(await engine.NextTokensAsync([Partial], new(1, null), default));
    }

    public static TheoryData<string, string> SampleCases => new()
    {
        { "n0", "n is -1" },
        { "nBig", "n is 100000" },
        { "maxNew", "max_new_tokens" },
        { "temperature0", "temperature is 0" },
        { "temperatureNaN", "temperature is NaN" },
        { "topP0", "top_p is 0" },
        { "topPBig", "top_p is 1.5" },
        { "topK", "top_k is -2" },
        { "alphaNegative", "alpha is -1" },
        { "alphaNaN", "alpha is NaN" },
        { "alphaWithPolicy", "alpha is only used with sample_from GUIDED" },
        { "guidedNoAlpha", "sample_from GUIDED needs alpha" },
        { "stopLong", "stop[1] has 65 characters" },
        { "stopEmpty", "stop[0] is empty" },
        { "appendEos", "append_eos" },
    };

    static (ScoreItemInput Item, SampleOptions Options) BuildSample(string kind)
    {
        var options = new SampleOptions { MaxNewTokens = 4 };
        return kind switch
        {
            "n0" => (PromptOnly, options with { N = -1 }),
            "nBig" => (PromptOnly, options with { N = 100_000 }),
            "maxNew" => (PromptOnly, options with { MaxNewTokens = 100_000 }),
            "temperature0" => (PromptOnly, options with { Temperature = 0 }),
            "temperatureNaN" => (PromptOnly, options with { Temperature = double.NaN }),
            "topP0" => (PromptOnly, options with { TopP = 0 }),
            "topPBig" => (PromptOnly, options with { TopP = 1.5 }),
            "topK" => (PromptOnly, options with { TopK = -2 }),
            "alphaNegative" => (PromptOnly, options with { From = SampleFrom.Guided, Alpha = -1 }),
            "alphaNaN" => (PromptOnly, options with { From = SampleFrom.Guided, Alpha = double.NaN }),
            "alphaWithPolicy" => (PromptOnly, options with { Alpha = 2 }),
            "guidedNoAlpha" => (PromptOnly, options with { From = SampleFrom.Guided }),
            "stopLong" => (PromptOnly, options with { Stop = [".", new string('x', 65)] }),
            "stopEmpty" => (PromptOnly, options with { Stop = [""] }),
            "appendEos" => (PromptOnly with { AppendEos = true }, options),
            _ => throw new ArgumentException(kind),
        };
    }

    [Theory, MemberData(nameof(SampleCases))]
    public async Task Sample_BadInput_IsInvalidArgumentNamingTheField(string kind, string message)
    {
        using var engine = await StartAsync();
        var (item, options) = BuildSample(kind);
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.SampleAsync(item, options, default));
        Assert.Equal(ScoringErrorKind.InvalidArgument, error.Kind);
        Assert.Contains(message, error.Message);

        Assert.Single((await engine.SampleAsync(PromptOnly, new SampleOptions { MaxNewTokens = 2, Seed = 1 }, default)).Samples);
    }
}
