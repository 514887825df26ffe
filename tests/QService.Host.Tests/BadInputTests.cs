using Grpc.Core;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>Every kind of bad input gets its status and a message that says what to fix, and the service keeps serving.</summary>
[Collection(nameof(PairServerCollection))]
public class BadInputTests(PairServer fixture)
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;

    static ScoreItem Ids(int[] prompt, int[] response, string id = "x") =>
        new() { Id = id, PromptTokenIds = { prompt }, ResponseTokenIds = { response } };

    public static TheoryData<string, StatusCode, string> Cases => new()
    {
        { "empty", StatusCode.InvalidArgument, "no items" },
        { "neither", StatusCode.InvalidArgument, "not neither" },
        { "both", StatusCode.InvalidArgument, "not both" },
        { "emptyResponse", StatusCode.InvalidArgument, "response_token_ids is empty" },
        { "textWithoutTokenizer", StatusCode.InvalidArgument, "send prompt_token_ids" },
        { "idOutOfVocab", StatusCode.InvalidArgument, "item 1 ('bad'): response token at position 2 has id 320, outside the vocabulary [0, 320)" },
        { "negativeId", StatusCode.InvalidArgument, "prompt token at position 0 has id -1" },
        { "tooLong", StatusCode.InvalidArgument, "= 130 tokens, longer than the model context of 128" },
        { "tooManyItems", StatusCode.ResourceExhausted, "65 items, more than the limit of 64" },
        { "tooManyTokens", StatusCode.ResourceExhausted, "more than the limit of 4000" },
        { "betaZero", StatusCode.InvalidArgument, "beta must be a finite number > 0" },
        { "betaNegative", StatusCode.InvalidArgument, "beta must be a finite number > 0" },
        { "betaNaN", StatusCode.InvalidArgument, "beta must be a finite number > 0" },
        { "betaInfinite", StatusCode.InvalidArgument, "beta must be a finite number > 0" },
        { "emptyPrompt", StatusCode.InvalidArgument, "the prompt has no tokens" },
        { "betaOverflows", StatusCode.InvalidArgument, "makes the credits overflow float32" },
        { "emptyStepDelimiter", StatusCode.InvalidArgument, "step_delimiter is empty" },
        { "longStepDelimiter", StatusCode.InvalidArgument, "step_delimiter has 65 characters, more than 64" },
        { "stepsWithoutTokenizer", StatusCode.InvalidArgument, "step_delimiter needs the response text, but this server has no tokenizer" },
    };

    static ScoreRequest Build(string kind) => kind switch
    {
        "empty" => new ScoreRequest(),
        "neither" => new ScoreRequest { Items = { new ScoreItem { Id = "n" } } },
        "both" => new ScoreRequest { Items = { new ScoreItem { Prompt = "a", Response = "b", PromptTokenIds = { 1 }, ResponseTokenIds = { 2 } } } },
        "emptyResponse" => new ScoreRequest { Items = { Ids([1, 2], []) } },
        "textWithoutTokenizer" => new ScoreRequest { Items = { new ScoreItem { Prompt = "hello", Response = "world" } } },
        "idOutOfVocab" => new ScoreRequest { Items = { Ids([1, 2], [3]), Ids([1, 2], [3, 4, 320], "bad") } },
        "negativeId" => new ScoreRequest { Items = { Ids([-1, 2], [3]) } },
        "tooLong" => new ScoreRequest { Items = { Ids(Enumerable.Repeat(5, 100).ToArray(), Enumerable.Repeat(6, 30).ToArray()) } },
        "tooManyItems" => new ScoreRequest { Items = { Enumerable.Range(0, 65).Select(_ => Ids([1], [2])) } },
        "tooManyTokens" => new ScoreRequest { Items = { Enumerable.Range(0, 40).Select(_ => Ids(Enumerable.Repeat(1, 60).ToArray(), Enumerable.Repeat(2, 60).ToArray())) } },
        "betaZero" => new ScoreRequest { Beta = 0, Items = { Ids([1], [2]) } },
        "betaNegative" => new ScoreRequest { Beta = -0.5f, Items = { Ids([1], [2]) } },
        "betaNaN" => new ScoreRequest { Beta = float.NaN, Items = { Ids([1], [2]) } },
        "betaInfinite" => new ScoreRequest { Beta = float.PositiveInfinity, Items = { Ids([1], [2]) } },
        "emptyPrompt" => new ScoreRequest { Items = { Ids([], [2, 3]) } },
        // Finite, but beta x log-ratio no longer fits a float32 credit (the fixture pair's log-ratios are ~0.01-1).
        "betaOverflows" => new ScoreRequest { Beta = 3e38f, Items = { Ids([1, 2, 3, 4], [5, 6, 7, 8, 9, 10]) } },
        "emptyStepDelimiter" => new ScoreRequest { StepDelimiter = "", Items = { Ids([1], [2]) } },
        "longStepDelimiter" => new ScoreRequest { StepDelimiter = new string('.', 65), Items = { Ids([1], [2]) } },
        "stepsWithoutTokenizer" => new ScoreRequest { StepDelimiter = "\n", Items = { Ids([1], [2]) } },
        _ => throw new ArgumentException(kind),
    };

    [Theory, MemberData(nameof(Cases))]
    public async Task BadRequest_GetsStatusAndMessage_AndServiceKeepsServing(string kind, StatusCode expected, string message)
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await _scorer.ScoreAsync(Build(kind)));
        Assert.Equal(expected, e.StatusCode);
        Assert.Contains(message, e.Status.Detail);

        var good = await _scorer.ScoreAsync(new ScoreRequest { Items = { Ids([1, 2, 3], [4, 5]) } });
        Assert.Equal(2, good.Results[0].Credits.Count);
        Assert.All(good.Results[0].Credits, c => Assert.True(float.IsFinite(c)));
    }

    [Fact]
    public async Task BadMessageInAStream_EndsThatStreamWithItsStatus_OthersUnaffected()
    {
        using var call = _scorer.ScoreStream();
        await call.RequestStream.WriteAsync(new ScoreRequest { Items = { Ids([1, 2], [3]) } });
        await call.RequestStream.WriteAsync(Build("betaNegative"));
        Assert.True(await call.ResponseStream.MoveNext());
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        var good = await _scorer.ScoreAsync(new ScoreRequest { Items = { Ids([1, 2, 3], [4, 5]) } });
        Assert.Single(good.Results);
    }
}
