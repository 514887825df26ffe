using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Runtime.Loading;

namespace QService.Runtime.Models;

/// <summary>RoPE scaling as in config.json <c>rope_scaling</c>: linear, dynamic (NTK) or llama3.</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192);

/// <summary>
/// The fields of a HuggingFace <c>config.json</c> that the supported architectures use, under one set of
/// names (GPT-2's n_embd/n_layer/... are mapped onto them). Derived fields and checks live here, once.
/// </summary>
public sealed record ModelConfig
{
    public required string Architecture { get; init; }
    public required string ModelType { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int HeadDim { get; init; }
    public required int IntermediateSize { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public double NormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }
    /// <summary>Keys farther back than this many positions are not attended to (Mistral; Qwen2 when use_sliding_window).</summary>
    public int? SlidingWindow { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];

    public static readonly string[] SupportedArchitectures =
        ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel"];

    public static ModelConfig Load(string folder)
    {
        string path = Path.Combine(folder, "config.json");
        if (!File.Exists(path)) throw new CheckpointException($"{folder}: no config.json (expected a HuggingFace model folder)");
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new CheckpointException($"{path}: empty"); }
        catch (JsonException e) { throw new CheckpointException($"{path}: not valid JSON ({e.Message})", e); }
        try { return Parse(json).Validated(path); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new CheckpointException($"{path}: {e.Message}", e);
        }
    }

    public static ModelConfig Parse(JsonObject j)
    {
        string arch = j["architectures"]?.AsArray().FirstOrDefault()?.GetValue<string>()
            ?? throw new InvalidOperationException("no 'architectures' entry");
        if (!SupportedArchitectures.Contains(arch))
            throw new NotSupportedArchitectureException(arch);
        string modelType = Str(j, "model_type") ?? "";
        int? bos = Int(j, "bos_token_id");
        int[] eos = j["eos_token_id"] switch
        {
            JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
            JsonValue v => [v.GetValue<int>()],
            _ => [],
        };
        if (arch == "GPT2LMHeadModel")
        {
            int embd = Req(j, "n_embd"), heads = Req(j, "n_head");
            return new ModelConfig
            {
                Architecture = arch, ModelType = modelType, VocabSize = Req(j, "vocab_size"), HiddenSize = embd,
                NumHiddenLayers = Req(j, "n_layer"), NumAttentionHeads = heads, NumKeyValueHeads = heads, HeadDim = embd / heads,
                IntermediateSize = Int(j, "n_inner") ?? 4 * embd, MaxPositionEmbeddings = Int(j, "n_positions") ?? 1024,
                NormEps = Dbl(j, "layer_norm_epsilon") ?? 1e-5, TieWordEmbeddings = Bool(j, "tie_word_embeddings") ?? true,
                AttentionBias = true, MlpBias = true, HiddenAct = Str(j, "activation_function") ?? "gelu_new",
                BosTokenId = bos, EosTokenIds = eos,
            }.Gpt2Checks(j);
        }
        int hidden = Req(j, "hidden_size"), nHeads = Req(j, "num_attention_heads");
        bool useSliding = arch == "MistralForCausalLM" || (Bool(j, "use_sliding_window") ?? false);
        return new ModelConfig
        {
            Architecture = arch, ModelType = modelType, VocabSize = Req(j, "vocab_size"), HiddenSize = hidden,
            NumHiddenLayers = Req(j, "num_hidden_layers"), NumAttentionHeads = nHeads,
            NumKeyValueHeads = Int(j, "num_key_value_heads") ?? nHeads,
            HeadDim = Int(j, "head_dim") ?? hidden / nHeads,
            IntermediateSize = Req(j, "intermediate_size"), MaxPositionEmbeddings = Int(j, "max_position_embeddings") ?? 2048,
            NormEps = Dbl(j, "rms_norm_eps") ?? 1e-6, RopeTheta = Dbl(j, "rope_theta") ?? 10000,
            RopeScaling = ParseRopeScaling(j["rope_scaling"] as JsonObject),
            TieWordEmbeddings = Bool(j, "tie_word_embeddings") ?? false,
            // Qwen2 always has q/k/v biases (and no o_proj bias); Llama only when attention_bias is set.
            AttentionBias = arch == "Qwen2ForCausalLM" || (Bool(j, "attention_bias") ?? false),
            MlpBias = Bool(j, "mlp_bias") ?? false,
            SlidingWindow = useSliding ? Int(j, "sliding_window") : null,
            HiddenAct = Str(j, "hidden_act") ?? "silu",
            BosTokenId = bos, EosTokenIds = eos,
        };
    }

    /// <summary>config.json as save_pretrained writes it for the Llama family (Llama, Mistral, Qwen2).</summary>
    public JsonObject ToHuggingFaceJson()
    {
        if (Architecture == "GPT2LMHeadModel") throw new NotSupportedException("writing GPT-2 configs is not supported");
        var j = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture), ["model_type"] = ModelType, ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize, ["num_hidden_layers"] = NumHiddenLayers, ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads, ["head_dim"] = HeadDim, ["intermediate_size"] = IntermediateSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings, ["rms_norm_eps"] = NormEps, ["rope_theta"] = RopeTheta,
            ["tie_word_embeddings"] = TieWordEmbeddings, ["attention_bias"] = AttentionBias, ["mlp_bias"] = MlpBias,
            ["hidden_act"] = HiddenAct, ["torch_dtype"] = "float32",
        };
        if (BosTokenId is int bos) j["bos_token_id"] = bos;
        if (EosTokenIds.Length > 0) j["eos_token_id"] = EosTokenIds[0];
        if (SlidingWindow is int w) j["sliding_window"] = w;
        return j;
    }

    ModelConfig Gpt2Checks(JsonObject j)
    {
        if (Bool(j, "scale_attn_by_inverse_layer_idx") == true || Bool(j, "reorder_and_upcast_attn") == true)
            throw new InvalidOperationException("GPT-2 options scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported");
        if (Bool(j, "scale_attn_weights") == false)
            throw new InvalidOperationException("GPT-2 option scale_attn_weights=false is not supported");
        return this;
    }

    static RopeScaling? ParseRopeScaling(JsonObject? o)
    {
        if (o == null) return null;
        string type = Str(o, "rope_type") ?? Str(o, "type") ?? "default";
        if (type == "default") return null;
        if (type is not ("linear" or "dynamic" or "llama3"))
            throw new InvalidOperationException($"rope_scaling type '{type}' is not supported (supported: linear, dynamic, llama3)");
        return new RopeScaling(type, Dbl(o, "factor") ?? 1,
            Dbl(o, "low_freq_factor") ?? 1, Dbl(o, "high_freq_factor") ?? 4, Int(o, "original_max_position_embeddings") ?? 8192);
    }

    ModelConfig Validated(string path)
    {
        if (HiddenSize <= 0 || NumHiddenLayers <= 0 || NumAttentionHeads <= 0 || VocabSize <= 0 || IntermediateSize <= 0)
            throw new InvalidOperationException("sizes must be positive");
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new InvalidOperationException($"num_attention_heads ({NumAttentionHeads}) is not a multiple of num_key_value_heads ({NumKeyValueHeads})");
        if (Architecture == "GPT2LMHeadModel" && HiddenSize % NumAttentionHeads != 0)
            throw new InvalidOperationException($"n_embd ({HiddenSize}) is not divisible by n_head ({NumAttentionHeads})");
        if (HiddenAct is not ("silu" or "gelu_new" or "gelu" or "gelu_pytorch_tanh" or "relu"))
            throw new InvalidOperationException($"activation '{HiddenAct}' is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)");
        _ = path;
        return this;
    }

    static int Req(JsonObject j, string key) => Int(j, key) ?? throw new InvalidOperationException($"missing required field '{key}'");
    static int? Int(JsonObject j, string key) => j[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? (int)v.GetValue<double>() : null;
    static double? Dbl(JsonObject j, string key) => j[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;
    static bool? Bool(JsonObject j, string key) =>
        j[key] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;
    static string? Str(JsonObject j, string key) => j[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>The config names an architecture this runtime does not implement.</summary>
public sealed class NotSupportedArchitectureException(string architecture)
    : InvalidOperationException($"architecture '{architecture}' is not supported; supported: {string.Join(", ", ModelConfig.SupportedArchitectures)}");
