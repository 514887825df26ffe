using System.Text.RegularExpressions;

namespace QService.Runtime.Loading;

/// <summary>
/// Models named by HuggingFace hub id (<c>org/name</c>, optionally <c>@revision</c>) found in the local hub cache
/// that every transformers user already has: <c>models--org--name/snapshots/&lt;commit&gt;</c> under HF_HUB_CACHE,
/// HF_HOME/hub or ~/.cache/huggingface/hub. Offline only: nothing is downloaded.
/// </summary>
public static partial class HubCache
{
    [GeneratedRegex(@"^(?<id>[A-Za-z0-9][\w.-]*/[\w.-]+)(@(?<revision>[\w./-]+))?$")]
    private static partial Regex HubId();

    /// <summary>The cache folders searched, in order (those the environment names, then the default).</summary>
    public static IReadOnlyList<string> Roots(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var roots = new List<string>();
        if (environment("HF_HUB_CACHE") is { Length: > 0 } hub) roots.Add(hub);
        if (environment("HF_HOME") is { Length: > 0 } home) roots.Add(Path.Combine(home, "hub"));
        string user = environment("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        roots.Add(Path.Combine(environment("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(user, ".cache"), "huggingface", "hub"));
        return [.. roots.Distinct()];
    }

    /// <summary>
    /// A folder as it is, or the cached snapshot of a hub id: <c>@revision</c> is a branch or tag (resolved through
    /// refs/) or a commit; without one, refs/main, else the only snapshot. Throws <see cref="CheckpointException"/>
    /// saying where it looked when neither exists.
    /// </summary>
    public static string Resolve(string pathOrId, Func<string, string?>? environment = null)
    {
        if (Directory.Exists(pathOrId)) return pathOrId;
        var match = HubId().Match(pathOrId);
        if (!match.Success) throw new CheckpointException($"{pathOrId}: model folder not found (nor is it a hub id like org/name)");
        string id = match.Groups["id"].Value;
        string? revision = match.Groups["revision"].Success ? match.Groups["revision"].Value : null;
        var roots = Roots(environment);
        foreach (var root in roots)
        {
            string repo = Path.Combine(root, "models--" + id.Replace("/", "--"));
            string snapshots = Path.Combine(repo, "snapshots");
            if (!Directory.Exists(snapshots)) continue;
            string? commit = revision ?? "main";
            string refFile = Path.Combine(repo, "refs", commit);
            if (File.Exists(refFile)) commit = File.ReadAllText(refFile).Trim();
            if (Directory.Exists(Path.Combine(snapshots, commit))) return Path.Combine(snapshots, commit);
            if (revision is null && Directory.GetDirectories(snapshots) is [var only]) return only;
            if (revision is not null)
                throw new CheckpointException($"{pathOrId}: {repo} has no snapshot for revision '{revision}' (it has: " +
                    $"{string.Join(", ", Directory.GetDirectories(snapshots).Select(Path.GetFileName))})");
        }
        throw new CheckpointException($"{pathOrId}: not a folder, and not in the HuggingFace cache (looked in {string.Join(", ", roots)}); "
            + $"download it first (e.g. `huggingface-cli download {id}`) or give its folder");
    }
}
