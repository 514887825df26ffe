using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using QService.Runtime.Tokenization;

namespace QService.Demo;

/// <summary>
/// Learns a small byte-level BPE (GPT-2 style) on a corpus and writes it as tokenizer.json +
/// tokenizer_config.json, which the runtime loads like any HuggingFace tokenizer. Merges are learned until
/// every word of the corpus is one token (or the merge budget runs out), so the vocabulary stays small:
/// the 256 byte symbols, the merges, and one special token used as BOS and EOS.
/// </summary>
public static partial class BpeTrainer
{
    public const string SpecialToken = "<|endoftext|>";

    /// <summary>GPT-2's pre-tokenizer pattern, as the ByteLevel pre-tokenizer applies it.</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Split();

    public static void Train(IEnumerable<string> corpus, string folder, int maxMerges = 2000)
    {
        // Word frequencies, each word spelled in the byte alphabet.
        var words = new Dictionary<string, int>();
        foreach (var text in corpus)
            foreach (Match m in Gpt2Split().Matches(text))
            {
                string spelled = string.Concat(Encoding.UTF8.GetBytes(m.Value).Select(ByteLevelAlphabet.CharOf));
                words[spelled] = words.GetValueOrDefault(spelled) + 1;
            }
        var symbols = words.Keys.ToDictionary(w => w, w => w.Select(c => c.ToString()).ToList());
        var merges = new List<(string, string)>();
        while (merges.Count < maxMerges)
        {
            var counts = new Dictionary<(string, string), int>();
            foreach (var (word, freq) in words)
            {
                var s = symbols[word];
                for (int i = 0; i + 1 < s.Count; i++) counts[(s[i], s[i + 1])] = counts.GetValueOrDefault((s[i], s[i + 1])) + freq;
            }
            if (counts.Count == 0) break;
            // Most frequent pair; ties broken by the pair's text so training is deterministic.
            var best = counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1, StringComparer.Ordinal)
                .ThenBy(p => p.Key.Item2, StringComparer.Ordinal).First().Key;
            merges.Add(best);
            foreach (var s in symbols.Values)
                for (int i = 0; i + 1 < s.Count; i++)
                    if (s[i] == best.Item1 && s[i + 1] == best.Item2)
                    {
                        s[i] += s[i + 1];
                        s.RemoveAt(i + 1);
                    }
        }

        var vocab = new JsonObject();
        int id = 0;
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.CharOf((byte)b).ToString()] = id++;
        foreach (var (a, b) in merges) vocab[a + b] ??= id++;
        int specialId = id;

        Directory.CreateDirectory(folder);
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = specialId, ["content"] = SpecialToken, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = true, ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = byteLevel.DeepClone(),
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = byteLevel.DeepClone(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "", ["fuse_unk"] = false, ["byte_fallback"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)$"{m.Item1} {m.Item2}").ToArray()),
            },
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), tokenizer.ToJsonString(new() { WriteIndented = true }));
        var config = new JsonObject
        {
            ["add_bos_token"] = true, ["bos_token"] = SpecialToken, ["eos_token"] = SpecialToken, ["unk_token"] = SpecialToken,
            ["model_max_length"] = 128, ["tokenizer_class"] = "GPT2Tokenizer",
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString(new() { WriteIndented = true }));
    }
}
