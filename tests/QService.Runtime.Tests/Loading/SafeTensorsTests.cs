using System.Text;
using System.Text.Json;
using QService.Runtime.Loading;
using QService.Runtime.Scoring;
using static TorchSharp.torch;

namespace QService.Runtime.Tests.Loading;

public class SafeTensorsTests
{
    static readonly string LlamaFixture = Fixtures.Path("hf-reference", "llama-gqa");

    static float[] Score(string folder, string dtype = "float32")
    {
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(LlamaFixture, "expected.json")));
        int[] ids = expected.RootElement.GetProperty("input_ids")[1].EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var model = CausalLanguageModel.Load(folder, new ModelLoadOptions("cpu", dtype));
        return model.ScoreNextTokens([ids])[0].Logprobs;
    }

    /// <summary>Rewrites the fixture's tensors with a function applied to each (name, tensor) and returns the pairs written.</summary>
    static void Rewrite(string from, string to, Func<string, Tensor, Tensor> map)
    {
        var file = SafeTensorsFile.Open(from);
        using var scope = NewDisposeScope();
        var tensors = file.Tensors.Keys.Select(n => (n, map(n, file.Read(n)))).ToList();
        SafeTensorsWriter.Write(to, tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }

    [Fact]
    public void Writer_RoundTrips_FixtureExactly()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture, "model.safetensors");
        Rewrite(Path.Combine(LlamaFixture, "model.safetensors"), tmp.File("model.safetensors"), (_, t) => t);
        Assert.Equal(Score(LlamaFixture), Score(tmp.Path));
    }

    [Fact]
    public void ShardedCheckpoint_LoadsLikeSingleFile()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture, "model.safetensors");
        var file = SafeTensorsFile.Open(Path.Combine(LlamaFixture, "model.safetensors"));
        var names = file.Tensors.Keys.OrderBy(n => n).ToArray();
        var weightMap = new Dictionary<string, string>();
        using (NewDisposeScope())
        {
            for (int shard = 0; shard < 3; shard++)
            {
                string shardName = $"model-{shard + 1:00000}-of-00003.safetensors";
                var part = names.Where((_, i) => i % 3 == shard).ToArray();
                SafeTensorsWriter.Write(tmp.File(shardName), part.Select(n => (n, file.Read(n))));
                foreach (var n in part) weightMap[n] = shardName;
            }
        }
        File.WriteAllText(tmp.File("model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
        Assert.Equal(Score(LlamaFixture), Score(tmp.Path));
    }

    [Theory]
    [InlineData("bfloat16", 0.05)]
    [InlineData("float16", 0.02)]
    public void HalfPrecisionStorage_LoadsAndConvertsToFloat32(string storage, double tolerance)
    {
        var dtype = storage == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float16;
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture, "model.safetensors");
        Rewrite(Path.Combine(LlamaFixture, "model.safetensors"), tmp.File("model.safetensors"), (_, t) => t.to(dtype));
        var header = SafeTensorsFile.Open(tmp.File("model.safetensors"));
        Assert.All(header.Tensors.Values, t => Assert.Equal(storage == "bfloat16" ? "BF16" : "F16", t.DType));

        // The loaded float32 weights must equal the rounded values exactly: compare with an in-memory rounding.
        var original = SafeTensorsFile.Open(Path.Combine(LlamaFixture, "model.safetensors"));
        using (NewDisposeScope())
        {
            foreach (var name in original.Tensors.Keys)
            {
                var expected = original.Read(name).to(dtype).to(ScalarType.Float32);
                var loaded = Checkpoint.Open(tmp.Path).Read(name, expected.shape, ScalarType.Float32);
                Assert.True(expected.eq(loaded).all().item<bool>(), name);
            }
        }
        // And scores stay close to the float32 originals (rounding only).
        var a = Score(LlamaFixture);
        var b = Score(tmp.Path);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) < tolerance * Math.Max(1, Math.Abs(a[i])), $"{i}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void TruncatedFile_GivesErrorNamingFileAndTensor()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture);
        var bytes = File.ReadAllBytes(tmp.File("model.safetensors"));
        File.WriteAllBytes(tmp.File("model.safetensors"), bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<CheckpointException>(() => CausalLanguageModel.Load(tmp.Path, new ModelLoadOptions("cpu")));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void FileShorterThanItsHeader_GivesError()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture);
        var bytes = File.ReadAllBytes(tmp.File("model.safetensors"));
        File.WriteAllBytes(tmp.File("model.safetensors"), bytes[..200]);
        var e = Assert.Throws<CheckpointException>(() => CausalLanguageModel.Load(tmp.Path, new ModelLoadOptions("cpu")));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void HeaderThatLiesAboutSizes_GivesError()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture, "model.safetensors");
        // A header claiming shape [4, 4] F32 (64 bytes) for a tensor whose data_offsets span 32 bytes.
        string header = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model.norm.weight"] = new { dtype = "F32", shape = new[] { 4, 4 }, data_offsets = new[] { 0, 32 } },
        });
        WriteRaw(tmp.File("model.safetensors"), header, new byte[32]);
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(tmp.File("model.safetensors")));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("needs 64 bytes", e.Message);

        // A header whose offsets point past the end of the file.
        string beyond = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model.norm.weight"] = new { dtype = "F32", shape = new[] { 8 }, data_offsets = new[] { 0, 32 } },
        });
        WriteRaw(tmp.File("model.safetensors"), beyond, new byte[16]);
        e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(tmp.File("model.safetensors")));
        Assert.Contains("truncated", e.Message);

        // A header length larger than the file.
        File.WriteAllBytes(tmp.File("model.safetensors"), [.. BitConverter.GetBytes(1_000_000UL), .. "{}"u8.ToArray()]);
        e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(tmp.File("model.safetensors")));
        Assert.Contains("header length", e.Message);

        // A header that is not JSON.
        WriteRaw(tmp.File("model.safetensors"), "not json at all", []);
        e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(tmp.File("model.safetensors")));
        Assert.Contains("not valid JSON", e.Message);
    }

    static void WriteRaw(string path, string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. data]);
    }

    [Fact]
    public void MissingTensor_GivesErrorNamingIt()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture, "model.safetensors");
        var file = SafeTensorsFile.Open(Path.Combine(LlamaFixture, "model.safetensors"));
        using (NewDisposeScope())
            SafeTensorsWriter.Write(tmp.File("model.safetensors"),
                file.Tensors.Keys.Where(n => n != "model.layers.1.mlp.up_proj.weight").Select(n => (n, file.Read(n))));
        var e = Assert.Throws<CheckpointException>(() => CausalLanguageModel.Load(tmp.Path, new ModelLoadOptions("cpu")));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void ShapeMismatch_GivesErrorNamingTensorAndShapes()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture);
        var config = JsonDocument.Parse(File.ReadAllText(tmp.File("config.json"))).RootElement.EnumerateObject()
            .ToDictionary(p => p.Name, p => (object?)p.Value);
        config["intermediate_size"] = 128;
        File.WriteAllText(tmp.File("config.json"), JsonSerializer.Serialize(config));
        var e = Assert.Throws<CheckpointException>(() => CausalLanguageModel.Load(tmp.Path, new ModelLoadOptions("cpu")));
        Assert.Contains("mlp", e.Message);
        Assert.Contains("[256, 96]", e.Message);
        Assert.Contains("[128, 96]", e.Message);
    }

    [Fact]
    public void UnsupportedArchitecture_ListsSupportedOnes()
    {
        using var tmp = new TempFolder().WithFilesFrom(LlamaFixture);
        File.WriteAllText(tmp.File("config.json"), File.ReadAllText(tmp.File("config.json")).Replace("LlamaForCausalLM", "FalconForCausalLM"));
        var e = Assert.Throws<CheckpointException>(() => CausalLanguageModel.Load(tmp.Path, new ModelLoadOptions("cpu")));
        Assert.Contains("FalconForCausalLM", e.Message);
        Assert.Contains("config.json", e.Message);
        foreach (var arch in new[] { "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel" })
            Assert.Contains(arch, e.Message);
    }

    [Fact]
    public void Gpt2_PublishedKeyLayout_WithoutPrefixAndWithAttnBuffers_Loads()
    {
        string gpt2 = Fixtures.Path("hf-reference", "gpt2");
        using var tmp = new TempFolder().WithFilesFrom(gpt2, "model.safetensors");
        var file = SafeTensorsFile.Open(Path.Combine(gpt2, "model.safetensors"));
        using (NewDisposeScope())
        {
            var tensors = file.Tensors.Keys.Select(n => (n.Replace("transformer.", ""), file.Read(n))).ToList();
            // As published GPT-2 checkpoints carry them: the causal-mask buffers, which we ignore.
            for (int layer = 0; layer < 2; layer++)
            {
                tensors.Add(($"h.{layer}.attn.bias", ones(1, 1, 64, 64).tril().to(ScalarType.Byte)));
                tensors.Add(($"h.{layer}.attn.masked_bias", tensor(-1e4f)));
            }
            SafeTensorsWriter.Write(tmp.File("model.safetensors"), tensors);
        }
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(gpt2, "expected.json")));
        int[] ids = expected.RootElement.GetProperty("input_ids")[2].EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var a = CausalLanguageModel.Load(gpt2, new ModelLoadOptions("cpu"));
        using var b = CausalLanguageModel.Load(tmp.Path, new ModelLoadOptions("cpu"));
        Assert.Equal(a.ScoreNextTokens([ids])[0].Logprobs, b.ScoreNextTokens([ids])[0].Logprobs);
    }
}
