using System.Text.RegularExpressions;

namespace QService.Deployment.Tests;

/// <summary>The repository's .editorconfig is kept true: no C# line is longer than its max_line_length.</summary>
public partial class EditorConfigTests
{
    [Fact]
    public void NoCSharpLine_IsLongerThanTheEditorConfigSays()
    {
        string config = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, ".editorconfig"));
        int max = int.Parse(CSharpMaxLineLength().Match(config).Groups["n"].Value);
        var tooLong = new List<string>();
        foreach (string folder in new[] { "src", "tests" })
            foreach (string file in Directory.EnumerateFiles(Path.Combine(Fixtures.RepoRoot, folder), "*.cs", SearchOption.AllDirectories))
            {
                if (file.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj")) continue; // generated
                var lines = File.ReadAllLines(file);
                for (int i = 0; i < lines.Length; i++)
                    if (lines[i].Length > max) tooLong.Add($"{Path.GetRelativePath(Fixtures.RepoRoot, file)}:{i + 1} ({lines[i].Length})");
            }
        Assert.True(tooLong.Count == 0, $"{tooLong.Count} lines over {max} characters:\n{string.Join("\n", tooLong.Take(50))}");
    }

    [GeneratedRegex(@"\[\*\.\{cs[^\]]*\]\s*(?:[^\[]*?\n)*?max_line_length\s*=\s*(?<n>\d+)")]
    private static partial Regex CSharpMaxLineLength();
}
