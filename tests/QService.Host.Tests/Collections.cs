namespace QService.Host.Tests;

// xunit finds collection definitions in the test assembly itself: the shared servers of QService.TestSupport, one per collection.
[CollectionDefinition(nameof(PairServerCollection))]
public sealed class PairServerCollection : ICollectionFixture<PairServer>;

[CollectionDefinition(nameof(DefaultServerCollection))]
public sealed class DefaultServerCollection : ICollectionFixture<DefaultServer>;
