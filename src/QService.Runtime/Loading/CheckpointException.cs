namespace QService.Runtime.Loading;

/// <summary>
/// A checkpoint folder that cannot be loaded: corrupt or truncated file, missing tensor, shape mismatch,
/// unsupported architecture or dtype. The message names the file and the problem.
/// </summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);
