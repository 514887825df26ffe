namespace QService.Runtime.Tokenization;

/// <summary>
/// Bounds of one render, so that a huge or hostile conversation cannot hang or exhaust the service: statements the
/// JavaScript engine runs, wall time, memory allocated and call depth. The defaults render a real template on a
/// conversation of a whole model context (100,000s of characters) well inside them.
/// </summary>
public sealed record ChatRenderLimits(int MaxStatements = 50_000_000, double TimeoutSeconds = 10, long MaxMemoryBytes = 512L << 20, int MaxRecursion = 400);
