using QService.Engine.Backends;
using QService.Runtime.Tokenization;

namespace QService.Engine;

/// <summary>
/// What the engine checks requests against and reports: the served pair's description, its tokenizer (null:
/// token ids only) and the most characters one token covers (0 without a tokenizer).
/// </summary>
public sealed record ServedModels(ServedPair Info, HfTokenizer? Tokenizer = null, int LongestTokenChars = 0)
{
    public int VocabSize => Info.VocabSize;
    public int MaxContext => Info.MaxContext;
    public double DefaultBeta => Info.DefaultBeta;
    public int? EosTokenId => Info.EosTokenId;

    /// <summary>The index of the policy a request names (null or empty: the default, 0); -1 when none has that name.</summary>
    public int PolicyIndex(string? name)
    {
        if (string.IsNullOrEmpty(name)) return 0;
        var policies = Info.Policies;
        for (int p = 0; p < policies.Count; p++)
            if (policies[p].Name == name) return p;
        return -1;
    }

    public IEnumerable<string> PolicyNames => Info.Policies.Select(p => p.Name);
}

/// <summary>What the engine's factory hands the owner thread: a ready backend and the models it serves.</summary>
public sealed record LoadedBackend(IScoringBackend Backend, ServedModels Models);
