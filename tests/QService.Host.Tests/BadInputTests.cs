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

    // Every kind of bad input is unit-tested on the engine (Engine.Tests: ScoringEngineValidationTests); these
    // check that each kind of error reaches the caller over a real socket with its gRPC status.
    public static TheoryData<string, StatusCode, string> Cases => new()
    {
        { "idOutOfVocab", StatusCode.InvalidArgument, "item 1 ('bad'): response token at position 2 has id 320, outside the vocabulary [0, 320)" },
        { "tooManyItems", StatusCode.ResourceExhausted, "65 items, more than the limit of 64" },
        // A float field left NaN in the proto arrives as NaN, not as "unset".
        { "betaNaN", StatusCode.InvalidArgument, "beta must be a finite number > 0" },
    };

    static ScoreRequest Build(string kind) => kind switch
    {
        "idOutOfVocab" => new ScoreRequest { Items = { Ids([1, 2], [3]), Ids([1, 2], [3, 4, 320], "bad") } },
        "tooManyItems" => new ScoreRequest { Items = { Enumerable.Range(0, 65).Select(_ => Ids([1], [2])) } },
        "betaNaN" => new ScoreRequest { Beta = float.NaN, Items = { Ids([1], [2]) } },
        "betaNegative" => new ScoreRequest { Beta = -0.5f, Items = { Ids([1], [2]) } },
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
