namespace QService.Engine;

public sealed partial class ScoringEngine
{
    /// <summary>Whether the served tokenizer has a usable chat template, so that items may give messages.</summary>
    public bool HasChatTemplate => Models.Tokenizer?.ChatTemplate is not null;

    /// <summary>
    /// A conversation rendered with the checkpoint's chat template, as transformers' apply_chat_template(tokenize=False)
    /// does; the prompt of a chat request is <c>RenderChat(messages, addGenerationPrompt: true)</c>. Tokenise the text
    /// without adding special tokens (the template writes its own): <see cref="ChatPromptTokenIds"/> does.
    /// </summary>
    /// <exception cref="ScoringException">INVALID_ARGUMENT naming "messages": no template, a bad role, the template refused or failed;
    /// RESOURCE_EXHAUSTED: the render ran past its bounds.</exception>
    public string RenderChat(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return ChatPrompts.Render(Models.Tokenizer, messages, addGenerationPrompt);
    }

    /// <summary>The token ids of <see cref="RenderChat"/>(messages, addGenerationPrompt: true): what Score and Sample put before the response.</summary>
    public int[] ChatPromptTokenIds(IReadOnlyList<ChatTurn> messages) =>
        Models.Tokenizer!.EncodeIds(RenderChat(messages, addGenerationPrompt: true), addSpecialTokens: false);
}
