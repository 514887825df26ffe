using System.Text.Json.Nodes;
using QService.Engine;
using QService.Runtime.Tokenization;

namespace QService.Host.OpenAi;

/// <summary>
/// vLLM's tokenizer routes, which lm-evaluation-harness's remote tokenizer calls: GET /tokenizer_info, POST /tokenize
/// {prompt, add_special_tokens} -> {count, max_model_len, tokens}, POST /detokenize {tokens} -> {prompt}.
/// </summary>
public sealed class TokenizerRoutes(ScoringEngine engine)
{
    HfTokenizer Tokenizer => engine.Tokenizer
        ?? throw OpenAiException.Invalid("this server has no tokenizer (no tokenizer.json with the policy); it takes token ids only");

    /// <summary>The special tokens as strings (lm-eval requires eos_token), the context length and the vocabulary size.</summary>
    public Task<JsonNode?> InfoAsync(OpenAiCall call)
    {
        var tokenizer = Tokenizer;
        var info = engine.Info;
        string? Text(int? id) => id is int i ? tokenizer.TokenText(i) : null;
        return Task.FromResult<JsonNode?>(new JsonObject
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["eos_token"] = Text(tokenizer.EosTokenId),
            ["bos_token"] = Text(tokenizer.BosTokenId),
            ["pad_token"] = null,
            ["add_bos_token"] = tokenizer.AddBosToken,
            ["model_max_length"] = info.MaxContext,
            ["max_model_len"] = info.MaxContext,
            ["vocab_size"] = info.VocabSize,
            // lm-eval's remote tokenizer renders chat prompts itself from this (RemoteTokenizer.apply_chat_template).
            ["chat_template"] = tokenizer.ChatTemplate?.Source,
        });
    }

    /// <summary>
    /// add_special_tokens defaults to true, as in vLLM (the BOS a prompt gets); special-token strings in the text are their tokens.
    /// With <c>messages</c> instead of <c>prompt</c>, the chat template's render (add_generation_prompt, default true) without added
    /// special tokens: the ids a chat request's prompt has.
    /// </summary>
    public Task<JsonNode?> TokenizeAsync(OpenAiCall call)
    {
        var tokenizer = Tokenizer;
        var messages = JsonFields.Get(call.Body, "messages") is { } ? ChatRoute.Messages(call.Body) : null;
        string prompt = messages is null
            ? JsonFields.String(call.Body, "prompt") ?? throw OpenAiException.Invalid("prompt is missing: give the text to tokenize, or messages", "prompt")
            : Rendered(messages, JsonFields.Bool(call.Body, "add_generation_prompt", true));
        bool special = messages is null && JsonFields.Bool(call.Body, "add_special_tokens", true);
        long limit = 2L * Math.Max(1, LongestChars(tokenizer)) * engine.Info.MaxContext;
        if (prompt.Length > limit)
            throw OpenAiException.Invalid($"prompt has {prompt.Length:N0} characters, more than any text that fits the model context", "prompt");
        int[] ids = tokenizer.EncodeIds(prompt, special);
        (call.Items, call.Tokens) = (1, ids.Length);
        return Task.FromResult<JsonNode?>(new JsonObject
        {
            ["count"] = ids.Length,
            ["max_model_len"] = engine.Info.MaxContext,
            ["tokens"] = new JsonArray([.. ids.Select(i => (JsonNode?)i)]),
        });
    }

    string Rendered(List<ChatTurn> messages, bool addGenerationPrompt)
    {
        try
        {
            return engine.RenderChat(messages, addGenerationPrompt);
        }
        catch (ScoringException e) when (e.Kind == ScoringErrorKind.InvalidArgument)
        {
            throw new OpenAiException(400, e.Message, "messages");
        }
    }

    /// <summary>Special tokens are kept, as transformers' decode does by default.</summary>
    public Task<JsonNode?> DetokenizeAsync(OpenAiCall call)
    {
        var tokenizer = Tokenizer;
        var tokens = JsonFields.Get(call.Body, "tokens") is { } t ? JsonFields.Ids(t) : null;
        if (tokens is null) throw OpenAiException.Invalid("tokens must be a list of token ids", "tokens");
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)tokenizer.VocabSize)
                throw OpenAiException.Invalid($"tokens[{i}] is {tokens[i]}, outside the vocabulary [0, {tokenizer.VocabSize})", "tokens");
        string text;
        try { text = tokenizer.Decode(tokens); }
        catch (ArgumentOutOfRangeException e) { throw OpenAiException.Invalid(e.Message.Split(" (Parameter")[0], "tokens"); }
        (call.Items, call.Tokens) = (1, tokens.Length);
        return Task.FromResult<JsonNode?>(new JsonObject { ["prompt"] = text });
    }

    /// <summary>The longest token's text: a bound on how much text one token covers.</summary>
    static int LongestChars(HfTokenizer tokenizer) => Longest.GetValue(tokenizer, t =>
        new StrongBox(Enumerable.Range(0, t.VocabSize).Max(id => SafeLength(t, id)))).Value;

    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<HfTokenizer, StrongBox> Longest = new();

    sealed class StrongBox(int value)
    {
        public int Value { get; } = value;
    }

    static int SafeLength(HfTokenizer t, int id)
    {
        try { return t.TokenText(id).Length; }
        catch (ArgumentOutOfRangeException) { return 0; }
    }
}
