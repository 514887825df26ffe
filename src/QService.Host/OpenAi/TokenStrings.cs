using QService.Runtime.Tokenization;

namespace QService.Host.OpenAi;

/// <summary>
/// A token's text as OpenAI clients see it: what it adds to the decoded text after the few tokens before it (so that a leading
/// space or a byte-level piece comes out as in the full text), special tokens kept. Without a tokenizer, or for an id the
/// tokenizer does not have, vLLM's "token_id:N".
/// </summary>
public sealed class TokenStrings(HfTokenizer? tokenizer)
{
    /// <summary>Tokens of context decoded before each token: enough for the decoders' leading-space and byte rules.</summary>
    const int Window = 4;

    public bool HasTokenizer => tokenizer != null;

    /// <summary>The text of <paramref name="id"/> at <paramref name="position"/>, after <c>context[..position]</c>.</summary>
    public string At(IReadOnlyList<int> context, int position, int id)
    {
        if (tokenizer is null || (uint)id >= (uint)tokenizer.VocabSize) return $"token_id:{id}";
        try
        {
            int start = Math.Max(0, position - Window);
            var before = new List<int>(Window + 1);
            for (int t = start; t < position; t++) before.Add(context[t]);
            string head = tokenizer.Decode(before);
            before.Add(id);
            string full = tokenizer.Decode(before);
            return full.StartsWith(head, StringComparison.Ordinal) ? full[head.Length..] : tokenizer.Decode([id]);
        }
        catch (ArgumentOutOfRangeException)
        {
            // An id inside the model's vocabulary that the tokenizer has no string for (a padded embedding row).
            return $"token_id:{id}";
        }
    }

    /// <summary>The text of every token of a sequence, each after the ones before it.</summary>
    public string[] All(IReadOnlyList<int> ids) => [.. ids.Select((id, t) => At(ids, t, id))];

    /// <summary>Decoded text with special tokens kept; empty without a tokenizer.</summary>
    public string Decode(IReadOnlyList<int> ids) => tokenizer?.Decode(ids) ?? "";
}
