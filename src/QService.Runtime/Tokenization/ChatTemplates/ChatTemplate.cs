using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace QService.Runtime.Tokenization;

/// <summary>
/// A checkpoint's chat template, rendered as transformers' <c>apply_chat_template(tokenize=False)</c> does: the
/// variables messages, tools and documents (None), add_generation_prompt, the tokenizer's special-token strings
/// (<see cref="SpecialTokens"/>), the caller's kwargs, and the globals raise_exception and strftime_now.
/// Thread-safe; the template is parsed once per pooled engine.
/// </summary>
public sealed class ChatTemplate
{
    static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    readonly JinjaRenderer _renderer;

    /// <param name="source">the template text</param>
    /// <param name="specialTokens">what transformers passes as special_tokens_map (bos_token, eos_token, ...: only those set)</param>
    /// <param name="clock">strftime_now's clock (local time, as Python's datetime.now())</param>
    /// <exception cref="ChatTemplateException">The template does not parse.</exception>
    public ChatTemplate(string source, IReadOnlyDictionary<string, JsonNode?> specialTokens, TimeProvider? clock = null, ChatRenderLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        SpecialTokens = specialTokens;
        _renderer = new JinjaRenderer(source, clock ?? TimeProvider.System, limits ?? new ChatRenderLimits());
    }

    public string Source { get; }

    public IReadOnlyDictionary<string, JsonNode?> SpecialTokens { get; }

    /// <summary>The rendered conversation. Kwargs are further template variables (e.g. enable_thinking), JSON values.</summary>
    /// <exception cref="ChatTemplateException">The template refused the conversation, failed on it, or ran past its bounds.</exception>
    public string Render(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt,
        IReadOnlyDictionary<string, JsonNode?>? kwargs = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var variables = new JsonObject();
        foreach (var (name, value) in SpecialTokens) variables[name] = value?.DeepClone();
        foreach (var (name, value) in kwargs ?? new Dictionary<string, JsonNode?>()) variables[name] = value?.DeepClone();
        variables["messages"] = new JsonArray([.. messages.Select(m => new JsonObject { ["role"] = m.Role, ["content"] = m.Content })]);
        variables["tools"] = null;
        variables["documents"] = null;
        variables["add_generation_prompt"] = addGenerationPrompt;
        return _renderer.Render(variables.ToJsonString(Json));
    }

    /// <summary>
    /// A prompt conversation and the assistant's answer split as TRL prepares DPO data: the prompt rendered with
    /// add_generation_prompt, the whole conversation without it, and the split at their longest common prefix
    /// (the prompt itself when the whole starts with it). The response holds the answer with its end-of-turn text.
    /// </summary>
    public (string Prompt, string Response) SplitAnswer(IReadOnlyList<(string Role, string Content)> messages, string answer,
        IReadOnlyDictionary<string, JsonNode?>? kwargs = null)
    {
        ArgumentNullException.ThrowIfNull(answer);
        string prompt = Render(messages, addGenerationPrompt: true, kwargs);
        string full = Render([.. messages, ("assistant", answer)], addGenerationPrompt: false, kwargs);
        int common = CommonPrefixLength(prompt, full);
        return (full[..common], full[common..]);
    }

    /// <summary>The longest common prefix in UTF-16 units, never ending inside a surrogate pair (Python compares code points).</summary>
    internal static int CommonPrefixLength(string a, string b)
    {
        int n = a.AsSpan().CommonPrefixLength(b);
        return n > 0 && n < a.Length && n < b.Length && char.IsHighSurrogate(a[n - 1]) ? n - 1 : n;
    }
}
