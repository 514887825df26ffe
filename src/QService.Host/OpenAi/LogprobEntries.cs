namespace QService.Host.OpenAi;

/// <summary>
/// One returned token's log-probability and its top alternatives. The token's own value comes from Score (or Sample, which equals
/// it); where it is among the top ones that same value is used, so that lm-eval's is_greedy test (the token's log-probability
/// equals the top one's) compares a number with itself.
/// </summary>
public sealed record LogprobEntry(int Id, string Token, double Logprob, IReadOnlyList<(string Token, double Logprob)> Top)
{
    /// <param name="top">the position's top tokens (may be empty when only the token's own log-probability was asked for)</param>
    /// <param name="includeToken">OpenAI's completions always list the token itself among its top_logprobs (so up to N+1 entries)</param>
    public static LogprobEntry Create(int id, double logprob, PositionTop top, int topN, bool includeToken, Func<int, string> text)
    {
        var entries = new List<(int Id, double Logprob)>();
        if (includeToken) entries.Add((id, logprob));
        for (int i = 0; i < top.Ids.Length && i < topN; i++)
            if (!entries.Any(e => e.Id == top.Ids[i])) entries.Add((top.Ids[i], top.Ids[i] == id ? logprob : top.Logprobs[i]));
        // Two ids with one string (rare) keep the larger value: a dict cannot hold both.
        var byText = new List<(string Token, double Logprob)>();
        foreach (var (candidate, value) in entries.OrderByDescending(e => e.Logprob))
            if (!byText.Any(t => t.Token == text(candidate))) byText.Add((text(candidate), value));
        return new LogprobEntry(id, text(id), logprob, byText);
    }
}
