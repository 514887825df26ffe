using System.Collections;
using QService.Protos.V1;

namespace QService.Client.Evaluation;

/// <summary>
/// Turns a raw dataset row (column name to string, list of token ids, or list of {role, content} messages, as JSON and
/// Parquet both give them) into a <see cref="PreferenceRow"/>, in TRL's preference formats:
/// explicit prompt (`prompt`/`chosen`/`rejected` as strings, token ids or conversations, the responses then being the
/// assistant's turn) or implicit prompt (no prompt column; `chosen`/`rejected` hold the whole text or conversation and
/// the prompt is their common prefix, split as TRL's extract_prompt splits it).
/// Whether prompts are implicit is decided once, by the first row: whether it has the prompt column.
/// </summary>
public sealed class PreferenceRowParser(PreferenceColumns columns, bool appendEos = true)
{
    bool? _implicitPrompt;

    public PreferenceRow Parse(long index, IReadOnlyDictionary<string, object?> row)
    {
        string? subset = row.TryGetValue(columns.Subset, out var s) && s != null
            ? Convert.ToString(s, System.Globalization.CultureInfo.InvariantCulture) : null;
        _implicitPrompt ??= !row.ContainsKey(columns.Prompt);
        foreach (var name in _implicitPrompt.Value ? [columns.Chosen, columns.Rejected] : new[] { columns.Prompt, columns.Chosen, columns.Rejected })
            if (!row.TryGetValue(name, out var v) || v is null) return PreferenceRow.Bad(index, subset, $"missing column '{name}'");
        try
        {
            var (chosen, rejected) = _implicitPrompt.Value
                ? SplitImplicit(row[columns.Chosen]!, row[columns.Rejected]!)
                : (Item(row[columns.Prompt]!, row[columns.Chosen]!, columns.Chosen), Item(row[columns.Prompt]!, row[columns.Rejected]!, columns.Rejected));
            chosen.Id = $"{index}/chosen";
            rejected.Id = $"{index}/rejected";
            chosen.AppendEos = rejected.AppendEos = appendEos;
            return new PreferenceRow(index, subset, chosen, rejected, null);
        }
        catch (BadRowException e) { return PreferenceRow.Bad(index, subset, e.Message); }
    }

    ScoreItem Item(object prompt, object response, string column)
    {
        var item = new ScoreItem();
        switch (Kind(prompt, columns.Prompt))
        {
            case ValueKind.Text: item.Prompt = (string)prompt; break;
            case ValueKind.Ids: item.PromptTokenIds.Add(Ids(prompt)); break;
            default: item.Messages.Add(Messages(prompt, columns.Prompt)); break;
        }
        switch (Kind(response, column))
        {
            case ValueKind.Text: item.Response = (string)response; break;
            case ValueKind.Ids: item.ResponseTokenIds.Add(Ids(response)); break;
            default:
                // TRL's conversational responses: [{"role": "assistant", "content": ...}]; earlier turns, if any, join the prompt.
                var turns = Messages(response, column);
                if (item.Messages.Count == 0 && (item.Prompt.Length > 0 || item.PromptTokenIds.Count > 0))
                    throw new BadRowException($"'{column}' is a conversation but '{columns.Prompt}' is not");
                item.Messages.Add(turns.SkipLast(1));
                item.Response = turns[^1].Content;
                break;
        }
        if (item.Response.Length == 0 && item.ResponseTokenIds.Count == 0) throw new BadRowException($"empty response in '{column}'");
        return item;
    }

    (ScoreItem, ScoreItem) SplitImplicit(object chosen, object rejected)
    {
        var kind = Kind(chosen, columns.Chosen);
        if (Kind(rejected, columns.Rejected) != kind) throw new BadRowException($"'{columns.Chosen}' and '{columns.Rejected}' are of different kinds");
        switch (kind)
        {
            case ValueKind.Text:
            {
                string c = (string)chosen, r = (string)rejected;
                int split = TextSplit(c, r);
                return (new ScoreItem { Prompt = c[..split], Response = NonEmpty(c[split..], columns.Chosen) },
                        new ScoreItem { Prompt = c[..split], Response = NonEmpty(r[split..], columns.Rejected) });
            }
            case ValueKind.Ids:
            {
                int[] c = Ids(chosen), r = Ids(rejected);
                int split = 0;
                while (split < c.Length && split < r.Length && c[split] == r[split]) split++;
                return (IdItem(c[..split], c[split..], columns.Chosen), IdItem(c[..split], r[split..], columns.Rejected));
            }
            default:
            {
                var c = Messages(chosen, columns.Chosen);
                var r = Messages(rejected, columns.Rejected);
                int split = 0;
                while (split < c.Count && split < r.Count && c[split].Equals(r[split])) split++;
                // The responses are the turns after the shared conversation: exactly one each, the assistant's answer.
                if (c.Count - split != 1 || r.Count - split != 1)
                    throw new BadRowException($"implicit prompt: '{columns.Chosen}' and '{columns.Rejected}' must differ in their last turn only");
                var prompt = c.Take(split).ToList();
                return (new ScoreItem { Messages = { prompt }, Response = NonEmpty(c[^1].Content, columns.Chosen) },
                        new ScoreItem { Messages = { prompt }, Response = NonEmpty(r[^1].Content, columns.Rejected) });
            }
        }
    }

    /// <summary>
    /// The common prefix of two texts, stepped back by one when the responses would start just after a space, so
    /// that they keep their leading space (TRL's extract_prompt does the same).
    /// </summary>
    public static int TextSplit(string chosen, string rejected)
    {
        int split = 0;
        while (split < chosen.Length && split < rejected.Length && chosen[split] == rejected[split]) split++;
        if (split > 0 && chosen[split - 1] == ' ') split--;
        return split;
    }

    ScoreItem IdItem(int[] prompt, int[] response, string column)
    {
        if (response.Length == 0) throw new BadRowException($"empty response in '{column}'");
        return new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { response } };
    }

    static string NonEmpty(string response, string column) =>
        response.Length > 0 ? response : throw new BadRowException($"empty response in '{column}'");

    enum ValueKind { Text, Ids, Messages }

    static ValueKind Kind(object value, string column) => value switch
    {
        string => ValueKind.Text,
        IList list when list.Count == 0 => throw new BadRowException($"'{column}' is an empty list"),
        IList list when list[0] is IDictionary or IReadOnlyDictionary<string, object?> => ValueKind.Messages,
        IList list when IsInteger(list[0]) => ValueKind.Ids,
        _ => throw new BadRowException($"'{column}' is neither a string, a list of token ids nor a list of messages"),
    };

    static bool IsInteger(object? v) => v is int or long or short or byte or uint or ulong or ushort or sbyte;

    static int[] Ids(object value) => ((IList)value).Cast<object?>()
        .Select(v => IsInteger(v) ? Convert.ToInt32(v) : throw new BadRowException("a token id list holds a non-integer")).ToArray();

    static List<ChatMessage> Messages(object value, string column) => ((IList)value).Cast<object?>().Select(m =>
    {
        var fields = m switch
        {
            IReadOnlyDictionary<string, object?> d => d,
            IDictionary d => d.Keys.Cast<object>().ToDictionary(k => k.ToString()!, k => d[k]),
            _ => throw new BadRowException($"'{column}' mixes messages with other values"),
        };
        if (!fields.TryGetValue("role", out var role) || role is not string r || !fields.TryGetValue("content", out var content) || content is not string c)
            throw new BadRowException($"a message in '{column}' lacks a string 'role' or 'content'");
        return new ChatMessage { Role = r, Content = c };
    }).ToList();

    sealed class BadRowException(string message) : Exception(message);
}
