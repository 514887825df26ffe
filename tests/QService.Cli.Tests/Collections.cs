namespace QService.Cli.Tests;

// xunit finds collection definitions in the test assembly itself: the shared servers of QService.TestSupport, one per collection.
[CollectionDefinition(nameof(PairServerCollection))]
public sealed class PairServerCollection : ICollectionFixture<PairServer>;

[CollectionDefinition(nameof(DefaultServerCollection))]
public sealed class DefaultServerCollection : ICollectionFixture<DefaultServer>;

[CollectionDefinition(nameof(TwoPolicyServerCollection))]
public sealed class TwoPolicyServerCollection : ICollectionFixture<TwoPolicyServer>;

/// <summary>
/// The demo pair served as two named policies against its reference: "nca" (the trained policy) and "sft" (the reference
/// itself, so its credits are 0); text input through the demo tokenizer. No prefix cache, so that repeated calls agree exactly.
/// </summary>
public sealed class TwoPolicyServer : IAsyncLifetime
{
    public ServerProcess Server { get; private set; } = null!;
    public string Address => $"http://127.0.0.1:{Server.GrpcPort}";

    public async Task InitializeAsync() => Server = await ServerProcess.StartServingAsync(
        "--policy", $"nca={Fixtures.DemoPair("policy")}", "--policy", $"sft={Fixtures.DemoPair("reference")}", "--reference", Fixtures.DemoPair("reference"),
        "--PrefixCache:Enabled=false");

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
