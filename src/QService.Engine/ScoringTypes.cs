namespace QService.Engine;

/// <summary>
/// One prompt/response to score, as text or as token ids (exactly one of the two). Text is tokenised as
/// training code does: the prompt with the tokenizer's special-token rule (BOS when it adds one), the
/// response without special tokens, then concatenated.
/// </summary>
public sealed record ScoreItemInput
{
    public string Id { get; init; } = "";
    public string? Prompt { get; init; }
    public string? Response { get; init; }
    public IReadOnlyList<int>? PromptTokenIds { get; init; }
    public IReadOnlyList<int>? ResponseTokenIds { get; init; }
    /// <summary>Score the end-of-sequence token after the response too, as for a finished response.</summary>
    public bool AppendEos { get; init; }
    /// <summary>The served policy that scores (or samples) it, by name; null or empty: the default (first) policy.</summary>
    public string? Policy { get; init; }
    /// <summary>The prompt as a conversation, in place of <see cref="Prompt"/>: rendered with the chat template.</summary>
    public IReadOnlyList<ChatTurn>? Messages { get; init; }
}

/// <summary>One turn of a conversation: its role (system, user, assistant, ...) and text.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>How a request is scored.</summary>
/// <param name="Beta">overrides the configured beta</param>
/// <param name="IncludeTokenText">return each response token's text and code-point offsets</param>
/// <param name="StepDelimiter">split the response into steps at this text and return step ends and rewards; null: no steps</param>
/// <param name="Policies">score every item under each of these served policies (the reference once per item); null or empty: each item's own</param>
/// <param name="Reproducible">
/// the numbers depend on this request alone (batched with no other request, no prefix reused from another), so that the same request on
/// a server of the same configuration and CPU gives the same bits; costs the cross-request batching and prefix reuse
/// </param>
public sealed record ScoreOptions(double? Beta = null, bool IncludeTokenText = false, string? StepDelimiter = null, IReadOnlyList<string>? Policies = null,
    bool Reproducible = false);

/// <summary>A response token's text and its [start, end) offsets in the response text, in Unicode code points.</summary>
public readonly record struct TokenSpan(string Text, int CharStart, int CharEnd);

/// <summary>
/// Per response token, under the named policy: policy and reference log-probabilities, credit = beta·(policy − reference) and the
/// running Q (q[t] = credit[0] + … + credit[t]); reward = Σ credits, accumulated in double.
/// </summary>
public sealed record ItemScores(
    string Id,
    int[] TokenIds,
    float[] PolicyLogprobs,
    float[] ReferenceLogprobs,
    float[] Credits,
    float[] QValues,
    double Reward,
    int PromptTokens,
    TokenSpan[]? Tokens,
    StepScores? Steps = null,
    string Policy = "");

/// <summary>Steps of a response: the token index that ends each step, and each step's summed credits (they add up to the reward).</summary>
public sealed record StepScores(int[] Ends, double[] Rewards);

/// <summary>How NextTokens candidates are ordered.</summary>
public enum RankBy { Policy, Reference, Credit }

/// <summary>
/// What NextTokens returns for each item: either the top_k tokens by <paramref name="RankBy"/>, or exactly the
/// candidate ids asked for, in that order.
/// </summary>
public sealed record NextTokenOptions(int TopK, IReadOnlyList<int>? CandidateIds, RankBy RankBy = RankBy.Policy, double? Beta = null);

/// <summary>One possible next token: its log-probability under each model and its credit beta·(policy − reference).</summary>
public sealed record NextTokenCandidate(int Id, string Text, float PolicyLogprob, float ReferenceLogprob, float Credit);

/// <summary>
/// For a prompt and partial response: Q of the partial response so far (the sum of its credits, 0 when it
/// is empty) and the candidates for the next token.
/// </summary>
public sealed record NextTokenChoices(string Id, int PromptTokens, int ResponseTokens, double Q, NextTokenCandidate[] Candidates, string Policy = "");

/// <summary>
/// The models being served, for GetModelInfo and the model-info metric: the default (first) policy's name and
/// architecture, the reference's, and every policy in <see cref="Policies"/>.
/// </summary>
public sealed record ServedPair(
    string PolicyName, string ReferenceName, string PolicyArchitecture, string ReferenceArchitecture,
    int VocabSize, int MaxContext, double DefaultBeta, string Dtype, string Device,
    int? BosTokenId, int? EosTokenId, IReadOnlyList<ServedPolicy>? PolicyList = null)
{
    /// <summary>The served policies in order (the first is the default); one named after the policy of a plain pair.</summary>
    public IReadOnlyList<ServedPolicy> Policies => PolicyList ?? [new ServedPolicy(PolicyName, PolicyName, PolicyArchitecture)];
}

/// <summary>
/// One served policy: the name requests use, the model it is (folder name), its architecture and, for a LoRA
/// adapter over the reference, what the adapter is (null for a full checkpoint).
/// </summary>
public sealed record ServedPolicy(string Name, string Model, string Architecture, ServedAdapter? Adapter = null);

/// <summary>A LoRA adapter as configured: r and alpha (before per-module patterns), its targets as written, and one line saying it all.</summary>
public sealed record ServedAdapter(string PeftType, int Rank, double Alpha, bool UseRslora, IReadOnlyList<string> TargetModules, int ModuleCount,
    IReadOnlyList<string> ModulesToSave, string Description);
