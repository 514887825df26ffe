namespace QService.Engine;

/// <summary>What went wrong, in terms a transport maps to its own status codes.</summary>
public enum ScoringErrorKind
{
    /// <summary>The request itself is wrong; the message says what to fix.</summary>
    InvalidArgument,
    /// <summary>The request is over a configured limit or the queue is full; retrying later or smaller may work.</summary>
    ResourceExhausted,
    /// <summary>The models are not loaded yet (or failed to load).</summary>
    Unavailable,
    /// <summary>A bug or a numerical failure (e.g. a non-finite result); logged with details.</summary>
    Internal,
}

public sealed class ScoringException(ScoringErrorKind kind, string message) : Exception(message)
{
    public ScoringErrorKind Kind { get; } = kind;

    public static ScoringException Invalid(string message) => new(ScoringErrorKind.InvalidArgument, message);
    public static ScoringException Exhausted(string message) => new(ScoringErrorKind.ResourceExhausted, message);
}
