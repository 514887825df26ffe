using QService.Runtime.Scoring;
using TorchSharp;
using static QService.Runtime.Tests.Models.HfParityTests;

namespace QService.Runtime.Tests.Scoring;

/// <summary>Extend (scoring on top of cached keys and values) against a fresh forward pass, on every reference architecture.</summary>
public class ExtendTests
{
    const int BlockSize = 4;

    static int[][] Inputs(string model) => ScoringTests.Inputs(model);

    /// <summary>
    /// A pass continuing <paramref name="cached"/> positions of cached blocks as the engine's prefix cache asks for
    /// it: the last cached position recomputed, its output predicting the first new token.
    /// </summary>
    static PassInput Continuing(int[] tokens, int firstTarget, int cached, IReadOnlyList<ICachedBlock> past, int newBlockSize = 0) =>
        new(tokens, firstTarget, past, PastLength: Math.Max(0, cached - 1), CachedLength: cached, NewBlockSize: newBlockSize);

    /// <summary>
    /// Blocks for the first <paramref name="length"/> tokens (rounded down to whole blocks), made by a fresh Extend turned as the whole
    /// sequence, as the engine computes a prefix for the items that continue it (longrope past its switch turns every position alike).
    /// </summary>
    static IReadOnlyList<ICachedBlock> Blocks(CausalLanguageModel model, int[] sequence, int length) =>
        model.Extend([new PassInput(sequence[..length], FirstTarget: 1, NewBlockSize: BlockSize, RopeLength: sequence.Length)])[0].NewBlocks;

    [Theory, MemberData(nameof(ModelNames), MemberType = typeof(Models.HfParityTests))]
    public void CachedPrefixes_GiveTheNumbersOfAFreshPass_EvenBatchedWithOtherPasts(string name)
    {
        using var model = CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        var seqs = Inputs(name).Where(s => s.Length > 3 * BlockSize).Take(3).ToArray();
        Assert.True(seqs.Length >= 2, "the fixture needs two sequences longer than three blocks");
        int[] firstTargets = [2, 3 * BlockSize + 1, 1];
        var fresh = model.ScoreTokens(seqs, firstTargets[..seqs.Length], includeLastLogits: true);

        // Sequence 0 continues 2 cached blocks (its first target falls inside them), sequence 1 continues 3, sequence 2 none.
        var blocks0 = Blocks(model, seqs[0], 2 * BlockSize + 1);
        var blocks1 = Blocks(model, seqs[1], 3 * BlockSize);
        try
        {
            int[] cached = [2 * BlockSize, 3 * BlockSize, 0];
            var inputs = seqs.Select((s, b) => Continuing(s, Math.Max(firstTargets[b], cached[b]), cached[b],
                b == 0 ? blocks0 : b == 1 ? blocks1 : [])).ToArray();
            var extended = model.Extend(inputs, includeLastLogits: true);
            for (int b = 0; b < seqs.Length; b++)
            {
                int skip = inputs[b].FirstTarget - firstTargets[b]; // positions served from the cache's stored log-probs
                AssertClose(fresh[b].Logprobs[skip..], extended[b].Logprobs, 1e-5, $"{name} sequence {b}");
                AssertClose(fresh[b].LastLogits!, extended[b].LastLogits!, 1e-4, $"{name} sequence {b} last logits");
            }
        }
        finally
        {
            foreach (var block in blocks0.Concat(blocks1)) block.Dispose();
        }
    }

    /// <summary>The fixtures with sliding-window layers, and Qwen3's with its window switched on (see <see cref="LoadWindowed"/>).</summary>
    public static TheoryData<string> WindowedModels => new() { "gemma2-softcap", "gemma3-text", "qwen3-tied+window", "qwen2-window" };

    /// <summary>
    /// A windowed model. "qwen3-tied+window" is the Qwen3 fixture with use_sliding_window on, a window of 8 and
    /// max_window_layers 1 (HF's default layer_types then make layer 1 sliding): HF has no numbers for it, but cached
    /// and decoding passes must still give a fresh pass's.
    /// </summary>
    internal static CausalLanguageModel LoadWindowed(string name)
    {
        if (name != "qwen3-tied+window") return CausalLanguageModel.Load(Fixture(name), new ModelLoadOptions("cpu"));
        var folder = Directory.CreateTempSubdirectory("qwen3-window-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(Fixture("qwen3-tied"))) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
            config.Remove("layer_types");
            (config["use_sliding_window"], config["sliding_window"], config["max_window_layers"]) = (true, 8, 1);
            File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
            return CausalLanguageModel.Load(folder, new ModelLoadOptions("cpu"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory, MemberData(nameof(WindowedModels))]
    public void ExtendingACachedPrefixAcrossTheSlidingWindow_GivesTheNumbersOfAFreshPass(string name)
    {
        using var model = LoadWindowed(name);
        int window = model.Config.SlidingWindow!.Value;
        Assert.Contains(Enumerable.Range(0, model.Config.NumHiddenLayers), i => model.Config.WindowOf(i) == window);
        var seq = Inputs(name.Split('+')[0]).MaxBy(s => s.Length)!;
        Assert.True(seq.Length > 2 * window + 2, "the sequence must cross the window twice");
        var fresh = model.ScoreTokens([seq], [1], includeLastLogits: true)[0];
        var cached = new List<ICachedBlock>();
        var pieces = new List<float>();
        float[] last = [];
        // Cuts before, at and past the window: each pass continues the blocks of the last (one position each).
        int at = 0;
        foreach (int cut in new[] { 5, window - 1, window + 3, 2 * window + 1, seq.Length })
        {
            var pass = model.Extend([Continuing(seq[..cut], Math.Max(1, at), at, cached, newBlockSize: 1)], includeLastLogits: true)[0];
            pieces.AddRange(pass.Logprobs);
            cached.AddRange(pass.NewBlocks);
            last = pass.LastLogits!;
            at = cut;
        }
        AssertClose(fresh.Logprobs, pieces.ToArray(), 1e-4, $"{name} extended across the window");
        AssertClose(fresh.LastLogits!, last, 1e-4, $"{name} last logits");
        foreach (var block in cached) block.Dispose();
    }

    [Fact]
    public void NewBlocks_CoverTheCompleteRunsAfterTheCachedLength_AndExtendAgain()
    {
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "llama-gqa"), new ModelLoadOptions("cpu"));
        var seq = Inputs("llama-gqa").First(s => s.Length > 4 * BlockSize);
        var first = Blocks(model, seq, 2 * BlockSize + 2);
        Assert.Equal(2, first.Count);
        var second = model.Extend([Continuing(seq[..(4 * BlockSize + 1)], 2 * BlockSize, 2 * BlockSize, first, BlockSize)])[0].NewBlocks;
        Assert.Equal(2, second.Count); // positions 8..15; 16 is not a complete block
        var all = first.Concat(second).ToArray();
        var fresh = model.ScoreTokens([seq], [4 * BlockSize]);
        var chained = model.Extend([Continuing(seq, 4 * BlockSize, 4 * BlockSize, all)]);
        AssertClose(fresh[0].Logprobs, chained[0].Logprobs, 1e-5, "four blocks made in two passes");
        foreach (var block in all) block.Dispose();
    }

    [Fact]
    public void ExtendLeavesNoLiveTensors_OnceItsBlocksAreDisposed()
    {
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "qwen2"), new ModelLoadOptions("cpu"));
        var seq = Inputs("qwen2").First(s => s.Length > 3 * BlockSize);
        foreach (var b in Blocks(model, seq, seq.Length)) b.Dispose(); // warm-up
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 20; i++)
        {
            var blocks = Blocks(model, seq, 2 * BlockSize);
            foreach (var b in model.Extend([Continuing(seq, 2 * BlockSize, 2 * BlockSize, blocks, BlockSize)],
                includeLastLogits: true)[0].NewBlocks) b.Dispose();
            foreach (var b in blocks) b.Dispose();
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void APass_ReadsAsMuchOfItsPastAsItIsTold()
    {
        // The rule of what to recompute is the prefix cache's: told to read all its cached positions, a pass does.
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "llama-gqa"), new ModelLoadOptions("cpu"));
        var seq = Inputs("llama-gqa").First(s => s.Length > 3 * BlockSize);
        var blocks = Blocks(model, seq, 2 * BlockSize);
        var fresh = model.ScoreTokens([seq], [2 * BlockSize + 1]);
        var extended = model.Extend([new PassInput(seq, 2 * BlockSize + 1, blocks, PastLength: 2 * BlockSize, CachedLength: 2 * BlockSize)]);
        AssertClose(fresh[0].Logprobs, extended[0].Logprobs, 1e-5, "the whole cached past read");
        foreach (var block in blocks) block.Dispose();
    }

    [Fact]
    public void APastThatDoesNotCoverItsPastLength_OrIsNotTheRuntimes_IsRefused()
    {
        using var model = CausalLanguageModel.Load(Fixtures.Path("hf-reference", "qwen2"), new ModelLoadOptions("cpu"));
        var seq = Inputs("qwen2")[0];
        Assert.Throws<ArgumentException>(() => model.Extend([Continuing(seq, 8, 8, [])]));
        Assert.Throws<ArgumentException>(() => model.Extend([Continuing(seq, 2, 2, [new ForeignBlock()])]));
    }

    /// <summary>A handle the runtime did not make (as a test fake's).</summary>
    sealed class ForeignBlock : ICachedBlock
    {
        public long Bytes => 0;
        public void Dispose() { }
    }
}
