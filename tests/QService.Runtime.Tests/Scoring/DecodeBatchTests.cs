using QService.Runtime.Scoring;
using TorchSharp;
using static QService.Runtime.Tests.Models.HfParityTests;

namespace QService.Runtime.Tests.Scoring;

/// <summary>Decoding steps (continuous batching over key/value slots) against a fresh forward pass, on every reference architecture.</summary>
public class DecodeBatchTests
{
    const int BlockSize = 4;

    /// <summary>The next-token log-probabilities after <paramref name="tokens"/>, from a fresh pass over all of them.</summary>
    static float[] Fresh(CausalLanguageModel model, int[] tokens)
    {
        var logits = model.ScoreTokens([tokens], [tokens.Length], includeLastLogits: true)[0].LastLogits!;
        double max = logits.Max(), lse = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        return [.. logits.Select(l => (float)(l - lse))];
    }

    [Theory, MemberData(nameof(ModelNames), MemberType = typeof(Models.HfParityTests))]
    public void Steps_GiveTheNumbersOfAFreshPass_WhileSequencesJoinAndLeave(string name)
    {
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        var seqs = ScoringTests.Inputs(name).Where(s => s.Length > 2 * BlockSize + 1).Take(2).ToArray();
        int[] a = seqs[0][..(2 * BlockSize + 1)], b = [.. a[..BlockSize], .. seqs[1][..2]], c = seqs[1][..3];
        int vocab = model.Config.VocabSize;
        var random = new Random(7);
        using var batch = new DecodeBatch(model);

        // a: two copies, computed from scratch; then, in one padded pass, b continuing a cached block and two copies of a shorter c.
        var (nextA, blocksA) = batch.Add([new DecodeStart(new PassInput(a, a.Length, NewBlockSize: BlockSize), Copies: 2)])[0];
        Assert.Equal(2, blocksA.Count);
        AssertClose(Fresh(model, a), nextA.ToArray(), 1e-4, $"{name}: after the prompt");
        var joined = batch.Add([new DecodeStart(new PassInput(b, b.Length, [blocksA[0]], PastLength: BlockSize - 1, CachedLength: BlockSize), Copies: 1),
            new DecodeStart(new PassInput(c, c.Length), Copies: 2)]);
        AssertClose(Fresh(model, b), joined[0].NextLogprobs.ToArray(), 1e-4, $"{name}: continuing a cached block");
        AssertClose(Fresh(model, c), joined[1].NextLogprobs.ToArray(), 1e-4, $"{name}: a shorter prompt in the same pass");

        var sequences = new List<List<int>> { a.ToList(), a.ToList(), b.ToList(), c.ToList(), c.ToList() }; // the slots' order
        for (int step = 0; step < 6; step++)
        {
            if (step == 3)
            {
                // The first copy of a leaves: the last sequence moves into its slot.
                batch.Remove(0);
                sequences[0] = sequences[^1];
                sequences.RemoveAt(sequences.Count - 1);
            }
            int[] tokens = [.. sequences.Select(_ => random.Next(vocab))];
            for (int s = 0; s < tokens.Length; s++) sequences[s].Add(tokens[s]);
            var next = batch.Step(tokens);
            for (int s = 0; s < sequences.Count; s++)
            {
                Assert.Equal(sequences[s].Count, batch.Length(s));
                AssertClose(Fresh(model, [.. sequences[s]]), next[s].ToArray(), 1e-4, $"{name}: step {step}, slot {s}");
            }
        }
        foreach (var block in blocksA) block.Dispose();
    }

    [Theory, MemberData(nameof(ExtendTests.WindowedModels), MemberType = typeof(ExtendTests))]
    public void DecodingAcrossTheSlidingWindow_GivesTheNumbersOfAFreshPass(string name)
    {
        using var model = ExtendTests.LoadWindowed(name);
        int window = model.Config.SlidingWindow!.Value;
        var inputs = ScoringTests.Inputs(name.Split('+')[0]);
        var (longest, other) = (inputs.MaxBy(s => s.Length)!, inputs[0]);
        using var batch = new DecodeBatch(model);
        // A prompt continuing a cached block, decoded together with a shorter one, both past twice the window.
        var (_, blocks) = batch.Add([new DecodeStart(new PassInput(longest[..(BlockSize + 2)], BlockSize + 2, NewBlockSize: BlockSize), Copies: 1)])[0];
        batch.Remove(0);
        var prompt = longest[..(BlockSize + 3)];
        var started = batch.Add([
            new DecodeStart(new PassInput(prompt, prompt.Length, [blocks[0]], PastLength: BlockSize - 1, CachedLength: BlockSize), Copies: 1),
            new DecodeStart(new PassInput(other[..2], 2), Copies: 1)]);
        AssertClose(Fresh(model, longest[..(BlockSize + 3)]), started[0].NextLogprobs.ToArray(), 1e-4, $"{name}: after the prompt");
        var sequences = new List<List<int>> { longest[..(BlockSize + 3)].ToList(), other[..2].ToList() };
        for (int step = 0; sequences[0].Count < longest.Length; step++)
        {
            int[] tokens = [longest[sequences[0].Count], other[sequences[1].Count % other.Length]];
            for (int s = 0; s < tokens.Length; s++) sequences[s].Add(tokens[s]);
            var next = batch.Step(tokens);
            for (int s = 0; s < sequences.Count; s++)
                AssertClose(Fresh(model, [.. sequences[s]]), next[s].ToArray(), 1e-4,
                    $"{name}: step {step}, slot {s} (length {sequences[s].Count}, window {window})");
        }
        Assert.True(sequences[1].Count > 2 * window);
        foreach (var block in blocks) block.Dispose();
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("gemma3-text")] // the eager attention, sliding and full masks, two RoPE bases
    public void DecodingLeavesNoLiveTensors_AndGivesTheStorageBack_WhenTheLastSequenceLeaves(string name)
    {
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        var prompt = ScoringTests.Inputs(name)[0];
        using var batch = new DecodeBatch(model);
        void Round()
        {
            var (_, blocks) = batch.Add([new DecodeStart(new PassInput(prompt, prompt.Length, NewBlockSize: BlockSize), Copies: 3)])[0];
            foreach (var block in blocks) block.Dispose();
            for (int step = 0; step < 70; step++) batch.Step([1, 2, 3]); // past the first capacity of 64 positions
            for (int s = 2; s >= 0; s--) batch.Remove(s);
        }
        Round(); // warm-up
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Round();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(0, batch.Bytes);
    }

    [Fact]
    public void AStepPastTheContext_IsRefused()
    {
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "gpt2"), new ModelLoadOptions("cpu"));
        using var batch = new DecodeBatch(model);
        int context = model.Config.MaxPositionEmbeddings;
        int[] full = [.. Enumerable.Repeat(1, context)];
        batch.Add([new DecodeStart(new PassInput(full, full.Length), Copies: 1)]);
        Assert.Throws<ArgumentException>(() => batch.Step([1]));
    }
}
