using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Tests.Batching;

namespace QService.Engine.Tests.Scoring;

/// <summary>A <see cref="ScoringEngine"/> on the fake backend: a pair of 320 tokens and 128 positions, token ids only, the limits of the host's pair-server tests.</summary>
internal static class FakeEngine
{
    public const int Vocab = 320, Context = 128, Eos = 2;

    public static readonly ServedModels Models = new(new ServedPair("fake-policy", "fake-reference", "Fake", "Fake", Vocab, Context,
        DefaultBeta: 0.1, Dtype: "float32", Device: "cpu", BosTokenId: 1, EosTokenId: Eos));

    public static FakeBackend Backend() => new() { Vocab = Vocab };

    public static async Task<ScoringEngine> StartAsync(FakeBackend? backend = null, ServedModels? models = null)
    {
        backend ??= Backend();
        var engine = new ScoringEngine(() => new LoadedBackend(backend, models ?? Models), new BatchingOptions(),
            new RequestLimits { MaxItemsPerRequest = 64, MaxTokensPerRequest = 4000 }, NullLogger.Instance, new PrefixCacheOptions { Enabled = false });
        engine.Start();
        await engine.Ready;
        return engine;
    }

    public static ScoreItemInput Ids(int[] prompt, int[] response, string id = "x") => new() { Id = id, PromptTokenIds = prompt, ResponseTokenIds = response };
}
