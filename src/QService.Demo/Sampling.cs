using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Demo;

/// <summary>Ancestral sampling (temperature 1) of responses from a model, a batch of prompts at a time.</summary>
public static class Sampling
{
    /// <summary>Returns the response texts (without EOS) for each prompt.</summary>
    public static List<string> Sample(CausalLanguageModel model, HfTokenizer tokenizer, IReadOnlyList<string> prompts, int maxTokens, Generator generator)
    {
        int eos = tokenizer.EosTokenId ?? throw new InvalidOperationException("the tokenizer has no EOS token");
        var sequences = prompts.Select(p => tokenizer.Encode(p, addSpecialTokens: true).Ids.ToList()).ToList();
        int[] promptLengths = sequences.Select(s => s.Count).ToArray();
        var done = new bool[prompts.Count];
        for (int step = 0; step < maxTokens && done.Contains(false); step++)
        {
            // Only the last position's distribution is needed: no per-token scores (firstTarget = length).
            var last = model.ScoreTokens(sequences.Select(s => s.ToArray()).ToList(), sequences.Select(s => s.Count).ToList(), includeLastLogits: true);
            using var scope = NewDisposeScope();
            var logits = stack(last.Select(l => tensor(l.LastLogits!)).ToArray());
            var next = multinomial(nn.functional.softmax(logits, -1), 1, generator: generator).squeeze(1).data<long>().ToArray();
            for (int i = 0; i < sequences.Count; i++)
            {
                if (done[i]) continue;
                if (next[i] == eos) done[i] = true;
                else sequences[i].Add((int)next[i]);
            }
        }
        return sequences.Select((s, i) => tokenizer.Decode(s.Skip(promptLengths[i]).ToArray())).ToList();
    }
}
