using System.Text;

namespace QService.Runtime.Tokenization;

/// <summary>
/// Computes HuggingFace-equal token strings and code-point offsets for ids from the native library, which
/// gives ids only. Added tokens are located in the input first (HuggingFace splits them out before
/// normalizing); the text between them is normalized by <see cref="TextPipeline"/> and the model tokens'
/// bytes are matched against it in order (<see cref="PieceMatcher"/>). A token covers the input code points
/// whose normalized bytes it contains, so the pieces of one multi-byte character all carry its span. Never
/// throws on odd input: where tokens do not match the text it falls back to a best-effort, in-order assignment.
/// </summary>
internal sealed class OffsetAligner(Vocabulary vocabulary, TextPipeline pipeline, OffsetTrimming? trimming)
{
    public (string[] Tokens, TokenOffset[] Offsets) Align(InputText input, int[] ids)
    {
        var pass = new Pass(vocabulary, pipeline, input, ids);
        pass.Run();
        trimming?.Apply(pass.Tokens, pass.Offsets);
        MakeMonotone(pass.Offsets, input.Length);
        return (pass.Tokens, pass.Offsets);
    }

    /// <summary>Guarantees 0 &lt;= Start &lt;= End &lt;= length and non-decreasing starts, whatever happened before.</summary>
    static void MakeMonotone(TokenOffset[] offsets, int length)
    {
        int floor = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            int start = Math.Clamp(offsets[i].Start, floor, length);
            offsets[i] = new TokenOffset(start, Math.Clamp(offsets[i].End, start, length));
            floor = start;
        }
    }

    /// <summary>The state of aligning one input.</summary>
    sealed class Pass(Vocabulary vocabulary, TextPipeline pipeline, InputText input, int[] ids)
    {
        readonly List<int> _pending = []; // indexes of the model tokens of the current segment
        readonly Dictionary<string, int> _nextMatch = new(StringComparer.Ordinal); // added-token text -> index found, -1 if none
        (int Start, int End, NormalizedSegment Text)? _lastSegment;
        int _cursor; // code point where the current segment starts

        public string[] Tokens { get; } = new string[ids.Length];
        public TokenOffset[] Offsets { get; } = new TokenOffset[ids.Length];

        public void Run()
        {
            for (int i = 0; i < ids.Length; i++)
            {
                if (vocabulary.Added.TryGetValue(ids[i], out var added) && TryLocate(added, out var span)
                    && (ids[i] != vocabulary.UnknownTokenId || PendingFits(span.Start)))
                {
                    AlignSegment(span.Start);
                    Tokens[i] = input.Text[input.Utf16Index(span.Start)..input.Utf16Index(span.End)];
                    Offsets[i] = span;
                    _cursor = span.End;
                }
                else
                {
                    _pending.Add(i);
                }
            }
            AlignSegment(input.Length);
        }

        /// <summary>Finds an added token's text at or after the cursor, widened by its lstrip/rstrip whitespace.</summary>
        bool TryLocate(AddedToken token, out TokenOffset span)
        {
            span = default;
            string text = input.Text;
            int floor = input.Utf16Index(_cursor);
            if (!_nextMatch.TryGetValue(token.Content, out int start) || (start >= 0 && start < floor))
                _nextMatch[token.Content] = start = token.Content.Length == 0 ? -1 : text.IndexOf(token.Content, floor, StringComparison.Ordinal);
            if (start < 0)
                return false; // not from the input (e.g. the model's own unknown token): align it as a model token
            int end = start + token.Content.Length;
            while (token.LStrip && start > floor && char.IsWhiteSpace(text[start - 1]))
                start--;
            while (token.RStrip && end < text.Length && char.IsWhiteSpace(text[end]))
                end++;
            span = new TokenOffset(input.CodePointIndex(start), input.CodePointIndex(end));
            return true;
        }

        /// <summary>
        /// Whether the pending model tokens spell exactly the text before an added-token match (unknown tokens
        /// covering what the others leave). Asked only for the unknown token, which is an added token but also
        /// what the model emits for text it cannot spell.
        /// </summary>
        bool PendingFits(int end)
        {
            var segment = Segment(end);
            int pos = 0, k = 0;
            foreach (var (_, to, spelled) in PieceMatcher.Walk(segment.Bytes, PendingPieces()))
            {
                if (!spelled && ids[_pending[k]] != vocabulary.UnknownTokenId)
                    return false;
                pos = to;
                k++;
            }
            return pos == segment.Bytes.Length;
        }

        /// <summary>Assigns offsets and token strings to the pending model tokens, which cover [cursor, end).</summary>
        void AlignSegment(int end)
        {
            if (_pending.Count == 0)
                return;
            var segment = Segment(end);
            int k = 0;
            foreach (var (from, to, _) in PieceMatcher.Walk(segment.Bytes, PendingPieces()))
            {
                int i = _pending[k++];
                Offsets[i] = segment.Span(from, to);
                Tokens[i] = ids[i] == vocabulary.UnknownTokenId && vocabulary.UnknownTokenShowsText
                    ? Encoding.UTF8.GetString(segment.Bytes, from, to - from)
                    : vocabulary.TextOf(ids[i]) ?? "";
            }
            _pending.Clear();
        }

        /// <summary>The normalized text of [cursor, end), kept while it is asked for again.</summary>
        NormalizedSegment Segment(int end)
        {
            if (_lastSegment is not { } last || last.Start != _cursor || last.End != end)
                _lastSegment = last = (_cursor, end, pipeline.Normalize(input, _cursor, end));
            return last.Text;
        }

        Piece[] PendingPieces() =>
            [.. _pending.Select(i => new Piece(pipeline.TokenBytes(vocabulary.TextOf(ids[i]) ?? ""), ids[i] == vocabulary.UnknownTokenId))];
    }
}
