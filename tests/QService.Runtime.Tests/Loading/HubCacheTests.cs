using QService.Runtime.Loading;

namespace QService.Runtime.Tests.Loading;

/// <summary>Hub ids resolved in a HuggingFace cache layout made here.</summary>
public class HubCacheTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("hub-cache-").FullName;
    const string Main = "0123456789abcdef0123456789abcdef01234567", Old = "89abcdef0123456789abcdef0123456789abcdef";

    public HubCacheTests()
    {
        string repo = Path.Combine(_root, "hub", "models--acme--tiny-dpo");
        foreach (var commit in new[] { Main, Old }) Directory.CreateDirectory(Path.Combine(repo, "snapshots", commit));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Main + "\n");
        File.WriteAllText(Path.Combine(repo, "refs", "v1"), Old);
        Directory.CreateDirectory(Path.Combine(_root, "hub", "models--acme--single", "snapshots", Old));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    string? Environment(string name) => name switch { "HF_HOME" => _root, "HOME" => "/nonexistent-home", _ => null };

    string Snapshot(string repo, string commit) => Path.Combine(_root, "hub", $"models--acme--{repo}", "snapshots", commit);

    [Fact]
    public void AHubId_ResolvesToTheSnapshotOfMain_OrOfTheRevisionAsked()
    {
        Assert.Equal(Snapshot("tiny-dpo", Main), HubCache.Resolve("acme/tiny-dpo", Environment));
        Assert.Equal(Snapshot("tiny-dpo", Old), HubCache.Resolve("acme/tiny-dpo@v1", Environment));
        Assert.Equal(Snapshot("tiny-dpo", Old), HubCache.Resolve($"acme/tiny-dpo@{Old}", Environment));
        Assert.Equal(Snapshot("single", Old), HubCache.Resolve("acme/single", Environment)); // no refs: the only snapshot
    }

    [Fact]
    public void AFolder_IsTakenAsItIs()
    {
        string folder = Snapshot("tiny-dpo", Main);
        Assert.Equal(folder, HubCache.Resolve(folder, Environment));
    }

    [Fact]
    public void AMissingModelOrRevision_SaysWhereItLooked()
    {
        var missing = Assert.Throws<CheckpointException>(() => HubCache.Resolve("acme/unknown", Environment));
        Assert.Contains(Path.Combine(_root, "hub"), missing.Message);
        Assert.Contains("/nonexistent-home/.cache/huggingface/hub", missing.Message);
        Assert.Contains("huggingface-cli download acme/unknown", missing.Message);
        var revision = Assert.Throws<CheckpointException>(() => HubCache.Resolve("acme/tiny-dpo@v9", Environment));
        Assert.Contains("no snapshot for revision 'v9'", revision.Message);
        Assert.Throws<CheckpointException>(() => HubCache.Resolve("not a model", Environment));
    }

    [Fact]
    public void TheCacheRoots_FollowHuggingFacesVariables()
    {
        Assert.Equal(["/a/hub-cache", "/b/hf-home/hub", "/c/xdg/huggingface/hub"],
            HubCache.Roots(n => n switch { "HF_HUB_CACHE" => "/a/hub-cache", "HF_HOME" => "/b/hf-home", "XDG_CACHE_HOME" => "/c/xdg", _ => null }));
    }
}

/// <summary>Loading reports its progress as the weights are read.</summary>
public class LoadProgressTests
{
    [Fact]
    public void Loading_ReportsBytesReadUpToTheCheckpointsSize()
    {
        var reports = new List<(long Done, long Total)>();
        using var model = QService.Runtime.Scoring.CausalLanguageModel.Load(Fixtures.Path("hf-reference", "llama-gqa"),
            new QService.Runtime.Scoring.ModelLoadOptions("cpu"),
            (done, total) => reports.Add((done, total)));
        Assert.True(reports.Count > 3);
        long total = new FileInfo(Fixtures.Path("hf-reference", "llama-gqa", "model.safetensors")).Length;
        Assert.All(reports, r => Assert.InRange(r.Total, total * 9 / 10, total)); // the tensors: the file less its header
        Assert.Equal(reports[^1].Total, reports[^1].Done);
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.Second.Done > p.First.Done));
    }
}
