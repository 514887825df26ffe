using QService.Runtime.Tokenization;

namespace QService.Engine;

/// <summary>
/// An item whose prompt is a conversation, turned into the text item it stands for with the checkpoint's chat
/// template, as TRL prepares DPO data: the prompt is the render with add_generation_prompt; a whole answer
/// (Score) becomes what rendering it as the last assistant turn adds, end-of-turn text included, split at the
/// longest common prefix of the two renders; a partial response (NextTokens, Sample) follows the prompt as given.
/// </summary>
internal static class ChatPrompts
{
    public const int MaxRoleLength = 64;

    /// <summary>The text item; the prompt holds the template's own special tokens (no BOS is to be added).</summary>
    public static ScoreItemInput AsText(ScoreItemInput item, string name, HfTokenizer? tokenizer, bool responseEndsTurn)
    {
        if (item.Prompt != null || item.PromptTokenIds is { Count: > 0 })
            throw ScoringException.Invalid($"{name}: messages and {(item.Prompt != null ? "prompt" : "prompt_token_ids")} are both set; " +
                "messages are the prompt, give one of them");
        var template = Template(tokenizer, $"{name}: messages");
        var turns = Turns(item.Messages!, $"{name}: ");
        string what = $"{name}: messages";
        if (responseEndsTurn && !string.IsNullOrEmpty(item.Response))
        {
            var (prompt, response) = Rendered(() => template.SplitAnswer(turns, item.Response), what);
            return item with { Messages = null, Prompt = prompt, Response = response };
        }
        return item with { Messages = null, Prompt = Rendered(() => template.Render(turns, addGenerationPrompt: true), what) };
    }

    /// <summary>The conversation rendered; errors name "messages".</summary>
    public static string Render(HfTokenizer? tokenizer, IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt)
    {
        var template = Template(tokenizer, "messages");
        var turns = Turns(messages, "");
        return Rendered(() => template.Render(turns, addGenerationPrompt), "messages");
    }

    static ChatTemplate Template(HfTokenizer? tokenizer, string field) => tokenizer?.ChatTemplate ?? throw ScoringException.Invalid(
        $"{field} need the checkpoint's chat template, and this server has none usable " +
        (tokenizer?.ChatTemplateProblem is { } problem ? $"({problem})" : "(no chat_template in tokenizer_config.json, no chat_template.jinja)") +
        "; send the prompt as text or token ids");

    /// <summary>Roles are names (system, user, assistant, tool, ...): a missing or odd one is the caller's slip, said before rendering.</summary>
    static (string Role, string Content)[] Turns(IReadOnlyList<ChatTurn> messages, string prefix)
    {
        if (messages.Count == 0) throw ScoringException.Invalid($"{prefix}messages is empty; give at least one turn");
        var turns = new (string, string)[messages.Count];
        for (int k = 0; k < messages.Count; k++)
        {
            string role = messages[k].Role ?? "";
            if (role.Length == 0 || role.Length > MaxRoleLength || !role.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                throw ScoringException.Invalid($"{prefix}messages[{k}].role is " + (role.Length == 0 ? "empty" : $"'{Cut(role)}'") +
                    $"; give a role such as system, user or assistant (ASCII letters, digits, '_' or '-', at most {MaxRoleLength})");
            turns[k] = (role, messages[k].Content ?? "");
        }
        return turns;
    }

    static T Rendered<T>(Func<T> render, string field)
    {
        try
        {
            return render();
        }
        catch (ChatTemplateException e)
        {
            throw e.Failure switch
            {
                ChatTemplateFailure.Raised => ScoringException.Invalid($"{field}: the chat template refused them: {e.Message}"),
                ChatTemplateFailure.TooLarge => ScoringException.Exhausted($"{field}: {e.Message}; send a shorter conversation"),
                _ => ScoringException.Invalid($"{field}: the chat template failed on them: {e.Message}"),
            };
        }
    }

    static string Cut(string text) => text.Length <= MaxRoleLength ? text : text[..MaxRoleLength] + "...";
}
