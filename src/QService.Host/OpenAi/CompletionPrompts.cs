using System.Text.Json;
using QService.Runtime.Tokenization;

namespace QService.Host.OpenAi;

/// <summary>A completions prompt as token ids, with its text for echo (as given, or the ids decoded).</summary>
public sealed record CompletionPrompt(int[] Ids, string Text);

public static class CompletionPrompts
{
    /// <summary>
    /// <c>prompt</c> as a string, a list of strings, a list of token ids or a list of lists of ids. Text is tokenized as Score
    /// tokenizes a prompt (BOS when the tokenizer adds one), so every number is Score's for those ids.
    /// </summary>
    public static List<CompletionPrompt> Read(JsonElement body, HfTokenizer? tokenizer, TokenStrings strings)
    {
        var prompt = JsonFields.Get(body, "prompt") ?? throw OpenAiException.Invalid("prompt is missing: give a string, strings, or token ids", "prompt");
        var prompts = prompt.ValueKind switch
        {
            JsonValueKind.String => [FromText(prompt.GetString()!, tokenizer)],
            JsonValueKind.Array when prompt.GetArrayLength() == 0 => throw OpenAiException.Invalid("prompt is an empty list", "prompt"),
            JsonValueKind.Array when JsonFields.Ids(prompt) is { } ids => [FromIds(ids, strings)],
            JsonValueKind.Array => prompt.EnumerateArray().Select(p => p.ValueKind == JsonValueKind.String
                ? FromText(p.GetString()!, tokenizer)
                : JsonFields.Ids(p) is { } list ? FromIds(list, strings) : throw Shape()).ToList(),
            _ => throw Shape(),
        };
        if (prompts.Any(p => p.Ids.Length == 0))
            throw OpenAiException.Invalid("a prompt has no tokens; every prompt needs at least one token of context", "prompt");
        return prompts;
    }

    static CompletionPrompt FromText(string text, HfTokenizer? tokenizer) => tokenizer is null
        ? throw OpenAiException.Invalid("this server has no tokenizer (it serves token ids only); send the prompt as token ids", "prompt")
        : new CompletionPrompt(tokenizer.EncodeIds(text, addSpecialTokens: true), text);

    static CompletionPrompt FromIds(int[] ids, TokenStrings strings) => new(ids, Decoded(ids, strings));

    /// <summary>Ids outside the vocabulary are refused by the engine with their position; their text is not needed before that.</summary>
    static string Decoded(int[] ids, TokenStrings strings)
    {
        try { return strings.Decode(ids); }
        catch (ArgumentOutOfRangeException) { return ""; }
    }

    static OpenAiException Shape() =>
        OpenAiException.Invalid("prompt must be a string, a list of strings, a list of token ids, or a list of lists of token ids", "prompt");
}
