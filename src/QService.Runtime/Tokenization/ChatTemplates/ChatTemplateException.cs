namespace QService.Runtime.Tokenization;

/// <summary>Why a chat template did not render.</summary>
public enum ChatTemplateFailure
{
    /// <summary>The template refused the conversation with raise_exception (e.g. "System role not supported"); the message is the template's.</summary>
    Raised,
    /// <summary>The template failed on the conversation (a Jinja runtime error); the message is the engine's.</summary>
    Failed,
    /// <summary>The render ran past its bounds (statements, time, memory or recursion).</summary>
    TooLarge,
}

/// <summary>A chat template did not render a conversation.</summary>
public sealed class ChatTemplateException(ChatTemplateFailure failure, string message) : Exception(message)
{
    public ChatTemplateFailure Failure { get; } = failure;
}
