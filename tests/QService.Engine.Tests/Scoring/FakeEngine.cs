using Microsoft.Extensions.Logging.Abstractions;
using QService.Engine.Tests.Batching;
using QService.Runtime.Tokenization;

namespace QService.Engine.Tests.Scoring;

/// <summary>
/// A <see cref="ScoringEngine"/> on the fake backend: a pair of 320 tokens and 128 positions, token ids only, the
/// limits of the host's pair-server tests.
/// </summary>
internal static class FakeEngine
{
    public const int Vocab = 320, Context = 128, Eos = 2;

    public static readonly ServedModels Models = new(new ServedPair("fake-policy", "fake-reference", "Fake", "Fake", Vocab, Context,
        DefaultBeta: 0.1, Dtype: "float32", Device: "cpu", BosTokenId: 1, EosTokenId: Eos));

    public static FakeBackend Backend() => new() { Vocab = Vocab };

    /// <summary>The fake pair with the demo pair's tokenizer (text items, token texts and steps), over its vocabulary.</summary>
    public static ServedModels WithTokenizer(HfTokenizer tokenizer) => Models with
    {
        Info = Models.Info with { VocabSize = tokenizer.VocabSize },
        Tokenizer = tokenizer,
        LongestTokenChars = Enumerable.Range(0, tokenizer.VocabSize).Max(id => Math.Max(1, tokenizer.TokenSurface(id).Length)),
    };

    public static HfTokenizer DemoTokenizer() => HfTokenizer.Load(Path.Combine(RepoRoot(), "models", "demo", "policy"));

    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "QService.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"QService.sln not found above {AppContext.BaseDirectory}");
    }

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
