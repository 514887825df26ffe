namespace QService.Runtime.Tests;

/// <summary>
/// Locates the reference fixtures copied from ../shared/fixtures into tests/fixtures. A missing fixture
/// fails the test (never a skip): parity with HuggingFace is the project's first promise.
/// </summary>
public static class Fixtures
{
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts)
    {
        string p = System.IO.Path.Combine([Root, .. parts]);
        if (!File.Exists(p) && !Directory.Exists(p))
            throw new FileNotFoundException($"Test fixture missing: {p}. The fixtures live in tests/fixtures (copied from ../shared/fixtures).", p);
        return p;
    }

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "tests", "fixtures");
            if (Directory.Exists(System.IO.Path.Combine(candidate, "hf-reference"))) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/fixtures/hf-reference not found above {AppContext.BaseDirectory}");
    }
}
