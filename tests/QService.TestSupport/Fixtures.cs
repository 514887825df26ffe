namespace QService.TestSupport;

/// <summary>
/// Locates the repository and the reference fixtures copied from ../shared/fixtures into tests/fixtures.
/// A missing fixture fails the test (never a skip): parity with HuggingFace is the project's first promise.
/// </summary>
public static class Fixtures
{
    /// <summary>The folder holding QService.sln, found above the test binaries.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Root { get; } = System.IO.Path.Combine(RepoRoot, "tests", "fixtures");

    /// <summary>models/demo/&lt;role&gt; (policy or reference), the committed demo pair; its absence fails the test.</summary>
    public static string DemoPair(string role = "")
    {
        string p = System.IO.Path.Combine(RepoRoot, "models", "demo", role);
        if (!Directory.Exists(p)) throw new DirectoryNotFoundException($"{p} not found; the demo pair is committed with the repository");
        return p.TrimEnd('/');
    }

    public static string Path(params string[] parts)
    {
        string p = System.IO.Path.Combine([Root, .. parts]);
        if (!File.Exists(p) && !Directory.Exists(p))
            throw new FileNotFoundException($"Test fixture missing: {p}. The fixtures live in tests/fixtures (copied from ../shared/fixtures).", p);
        return p;
    }

    static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "QService.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"QService.sln not found above {AppContext.BaseDirectory}");
    }
}
