namespace QService.Engine;

/// <summary>
/// What each RPC asks of an item's prompt and response beyond what all share (ids in the vocabulary, a prompt
/// token, the model context, the batch budget). One instance per RPC, so each rule is chosen where it is named.
/// </summary>
/// <param name="EmptyResponseAllowed">an empty response is a starting point (NextTokens, Sample), not nothing to score</param>
/// <param name="AppendEosAllowed">append_eos ends the response, which leaves no next token to ask about</param>
/// <param name="ResponseEndsTurn">with messages, the response is the assistant's whole answer: rendered as its turn, end-of-turn included (Score)</param>
/// <param name="NextTokenMustFit">the item continues: it must leave room in the context for at least one more token</param>
internal sealed record PreparationRules(bool EmptyResponseAllowed, bool AppendEosAllowed, bool NextTokenMustFit, bool ResponseEndsTurn = false)
{
    /// <summary>Scores a whole response: it must have a token, may end in EOS, and may fill the context.</summary>
    public static readonly PreparationRules Score = new(EmptyResponseAllowed: false, AppendEosAllowed: true, NextTokenMustFit: false,
        ResponseEndsTurn: true);

    /// <summary>Asks about the token after a partial response, which may be empty.</summary>
    public static readonly PreparationRules NextTokens = new(EmptyResponseAllowed: true, AppendEosAllowed: false, NextTokenMustFit: true);

    /// <summary>Continues a partial response as NextTokens does; max_new_tokens is checked against the room left afterwards.</summary>
    public static readonly PreparationRules Sample = NextTokens;
}
