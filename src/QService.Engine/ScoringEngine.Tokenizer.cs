using QService.Runtime.Tokenization;

namespace QService.Engine;

public sealed partial class ScoringEngine
{
    /// <summary>
    /// The served tokenizer, for transports that tokenize, split or show tokens themselves (the OpenAI-compatible and reward routes); null when the
    /// server takes token ids only. Throws UNAVAILABLE while the models load, as every call does.
    /// </summary>
    public HfTokenizer? Tokenizer => Models.Tokenizer;
}
