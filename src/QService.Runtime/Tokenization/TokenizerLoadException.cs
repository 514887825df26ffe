namespace QService.Runtime.Tokenization;

/// <summary>A tokenizer file is missing, unreadable, or describes something this loader does not support.</summary>
public sealed class TokenizerLoadException : Exception
{
    public TokenizerLoadException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
    }

    /// <summary>The file (or folder) the problem is about.</summary>
    public string FilePath { get; }
}
