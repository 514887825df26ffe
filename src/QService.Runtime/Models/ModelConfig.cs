using System.Text.Json;
using System.Text.Json.Nodes;
using QService.Runtime.Loading;

namespace QService.Runtime.Models;

/// <summary>
/// RoPE scaling as in config.json <c>rope_scaling</c>: linear, dynamic (NTK), llama3 or longrope (Phi3: per-frequency
/// short and long factors, and the attention factor that scales cos and sin).
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192,
    double[]? ShortFactor = null, double[]? LongFactor = null, double AttentionFactor = 1);

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
    /// <summary>Keys farther back than this many positions are not attended to (Mistral; Qwen2/Qwen3 with use_sliding_window, on sliding layers).</summary>
    public int? SlidingWindow { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    /// <summary>Per layer "full_attention" or "sliding_attention" (Qwen2, Qwen3, Gemma2, Gemma3); null: <see cref="SlidingWindow"/> on every layer.</summary>
    public string[]? LayerTypes { get; init; }
    /// <summary>Gemma: attention scores are scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5.</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary>Gemma2: tanh soft-capping of attention scores and of the final logits.</summary>
    public double? AttnLogitSoftcapping { get; init; }
    public double? FinalLogitSoftcapping { get; init; }
    /// <summary>Gemma3: the RoPE base of sliding-window layers (which use no rope scaling).</summary>
    public double? RopeLocalBaseFreq { get; init; }
    /// <summary>Phi3: RoPE acts on the first head_dim × this dimensions of each head only.</summary>
    public double PartialRotaryFactor { get; init; } = 1;

    public int RotaryDim => (int)(HeadDim * PartialRotaryFactor);

    /// <summary>The sliding window of one layer: its layer type decides when the config has them.</summary>
    public int? WindowOf(int layer) => LayerTypes is null || LayerTypes[layer] == "sliding_attention" ? SlidingWindow : null;

    /// <summary>
    /// Which RoPE a pass over a sequence of <paramref name="length"/> tokens (last position + 1) rotates with, as a number: passes
    /// of equal regime rotate every position alike, so keys and log-probabilities computed in one are valid in the other, and
    /// in no other regime. 0 for RoPE that does not depend on the length; longrope (HF's longrope_frequency_update): 0 up to
    /// original_max_position_embeddings, 1 (the long factors, for every position) past it; dynamic NTK: 0 up to
    /// max_position_embeddings, past it the length itself (each length has its own base). The runtime refuses sequences past
    /// max_position_embeddings, so dynamic scaling is always 0 in the service.
    /// </summary>
    public int RopeRegime(int length) => RopeScaling switch
    {
        { Type: "longrope", OriginalMaxPositionEmbeddings: var original } => length > original ? 1 : 0,
        { Type: "dynamic" } => length > MaxPositionEmbeddings ? length : 0,
        _ => 0,
    };

    public static readonly string[] SupportedArchitectures =
        ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Olmo2ForCausalLM", "Gemma2ForCausalLM",
         "Gemma3ForCausalLM", "Phi3ForCausalLM", "GPT2LMHeadModel"];

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
        int hidden = Req(j, "hidden_size"), nHeads = Req(j, "num_attention_heads"), nLayers = Req(j, "num_hidden_layers");
        bool gemma = arch is "Gemma2ForCausalLM" or "Gemma3ForCausalLM";
        // As HF's configs: Mistral, Phi3 and Gemma always have the window (Gemma on its sliding layers only); Qwen2/Qwen3 with use_sliding_window.
        // A config.json without the key gets the class default (4096, Phi3's none); an explicit null is none.
        bool useSliding = arch is "MistralForCausalLM" or "Phi3ForCausalLM" || gemma || (Bool(j, "use_sliding_window") ?? false);
        int? window = useSliding ? (j.ContainsKey("sliding_window") ? Int(j, "sliding_window") : arch == "Phi3ForCausalLM" ? null : 4096) : null;
        return new ModelConfig
        {
            Architecture = arch, ModelType = modelType, VocabSize = Req(j, "vocab_size"), HiddenSize = hidden,
            NumHiddenLayers = nLayers, NumAttentionHeads = nHeads,
            NumKeyValueHeads = Int(j, "num_key_value_heads") ?? nHeads,
            HeadDim = Int(j, "head_dim") ?? (gemma ? 256 : hidden / nHeads),
            IntermediateSize = Req(j, "intermediate_size"), MaxPositionEmbeddings = Int(j, "max_position_embeddings") ?? 2048,
            NormEps = Dbl(j, "rms_norm_eps") ?? 1e-6,
            RopeTheta = Dbl(j, "rope_theta") ?? (arch == "Gemma3ForCausalLM" ? 1e6 : 10000),
            RopeScaling = ParseRopeScaling(j["rope_scaling"] as JsonObject, j),
            TieWordEmbeddings = Bool(j, "tie_word_embeddings") ?? gemma, // save_pretrained leaves out Gemma's default (true)
            // Qwen2 always has q/k/v biases (and no o_proj bias); Llama only when attention_bias is set.
            AttentionBias = arch == "Qwen2ForCausalLM" || (Bool(j, "attention_bias") ?? false),
            MlpBias = Bool(j, "mlp_bias") ?? false,
            SlidingWindow = window,
            LayerTypes = LayerTypesOf(arch, j, nLayers, window),
            HiddenAct = (gemma ? Str(j, "hidden_activation") : null) ?? Str(j, "hidden_act") ?? (gemma ? "gelu_pytorch_tanh" : "silu"),
            BosTokenId = bos, EosTokenIds = eos,
            QueryPreAttnScalar = gemma ? Dbl(j, "query_pre_attn_scalar") ?? 256 : null,
            // Gemma2's class defaults are 50 and 30 (a config.json may leave them out), Gemma3's null.
            AttnLogitSoftcapping = gemma ? DblOrClassDefault(j, "attn_logit_softcapping", arch == "Gemma2ForCausalLM" ? 50 : null) : null,
            FinalLogitSoftcapping = gemma ? DblOrClassDefault(j, "final_logit_softcapping", arch == "Gemma2ForCausalLM" ? 30 : null) : null,
            RopeLocalBaseFreq = arch == "Gemma3ForCausalLM" ? Dbl(j, "rope_local_base_freq") ?? 10000 : null,
            PartialRotaryFactor = arch == "Phi3ForCausalLM" ? Dbl(j, "partial_rotary_factor") ?? 1 : 1,
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
        else if (Architecture == "MistralForCausalLM") j["sliding_window"] = null; // a missing key would read as MistralConfig's 4096
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

    /// <summary>
    /// HF's layer_types, or the default pattern its config class derives when config.json has none; only for the architectures
    /// whose HF config has them (Llama, Mistral, Phi3 and OLMo2 put the window, if any, on every layer).
    /// </summary>
    static string[]? LayerTypesOf(string arch, JsonObject j, int layers, int? window)
    {
        if (arch is not ("Qwen2ForCausalLM" or "Qwen3ForCausalLM" or "Gemma2ForCausalLM" or "Gemma3ForCausalLM")) return null;
        if (j["layer_types"] is JsonArray a) return [.. a.Select(x => x!.GetValue<string>())];
        Func<int, bool>? sliding = arch switch
        {
            // Qwen2/Qwen3: the first max_window_layers layers attend fully, the rest within the window.
            "Qwen2ForCausalLM" or "Qwen3ForCausalLM" => i => window != null && i >= (Int(j, "max_window_layers") ?? 28),
            "Gemma2ForCausalLM" => i => (i + 1) % 2 != 0,
            "Gemma3ForCausalLM" => i => (i + 1) % (Int(j, "_sliding_window_pattern") ?? Int(j, "sliding_window_pattern") ?? 6) != 0,
            _ => null,
        };
        return sliding is null ? null : [.. Enumerable.Range(0, layers).Select(i => sliding(i) ? "sliding_attention" : "full_attention")];
    }

    static RopeScaling? ParseRopeScaling(JsonObject? o, JsonObject config)
    {
        if (o == null) return null;
        string type = Str(o, "rope_type") ?? Str(o, "type") ?? "default";
        if (type == "default") return null;
        if (type is not ("linear" or "dynamic" or "llama3" or "longrope"))
            throw new InvalidOperationException($"rope_scaling type '{type}' is not supported (supported: linear, dynamic, llama3, longrope)");
        if (type == "longrope")
        {
            // As HF's _compute_longrope_parameters: the original context is config.original_max_position_embeddings (Phi3Config's
            // default 4096; max_position_embeddings for other configs, which have no such field), and cos/sin are scaled by
            // attention_factor, by default sqrt(1 + ln s / ln original), s = max / original.
            int max = Int(config, "max_position_embeddings") ?? 2048;
            string arch = config["architectures"]?.AsArray().FirstOrDefault()?.GetValue<string>() ?? "";
            int original = Int(config, "original_max_position_embeddings") ?? (arch == "Phi3ForCausalLM" ? 4096 : max);
            double s = (double)max / original;
            double attention = Dbl(o, "attention_factor") ?? (s <= 1 ? 1 : Math.Sqrt(1 + Math.Log(s) / Math.Log(original)));
            double[] Factors(string key) => (o[key] as JsonArray)?.Select(x => x!.GetValue<double>()).ToArray()
                ?? throw new InvalidOperationException($"longrope rope_scaling needs '{key}'");
            return new RopeScaling(type, s, OriginalMaxPositionEmbeddings: original,
                ShortFactor: Factors("short_factor"), LongFactor: Factors("long_factor"), AttentionFactor: attention);
        }
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
        if (RopeScaling is { Type: "longrope" } r && (r.ShortFactor!.Length != RotaryDim / 2 || r.LongFactor!.Length != RotaryDim / 2))
            throw new InvalidOperationException($"longrope short_factor and long_factor need rotary_dim / 2 = {RotaryDim / 2} entries");
        if (LayerTypes is { } types && (types.Length != NumHiddenLayers || types.Any(t => t is not ("full_attention" or "sliding_attention"))))
            throw new InvalidOperationException("layer_types needs one 'full_attention' or 'sliding_attention' per layer");
        if (HiddenAct is not ("silu" or "gelu_new" or "gelu" or "gelu_pytorch_tanh" or "relu"))
            throw new InvalidOperationException($"activation '{HiddenAct}' is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)");
        _ = path;
        return this;
    }

    static int Req(JsonObject j, string key) => Int(j, key) ?? throw new InvalidOperationException($"missing required field '{key}'");
    static int? Int(JsonObject j, string key) => j[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? (int)v.GetValue<double>() : null;
    static double? Dbl(JsonObject j, string key) => j[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;
    static double? DblOrClassDefault(JsonObject j, string key, double? classDefault) => j.ContainsKey(key) ? Dbl(j, key) : classDefault;
    static bool? Bool(JsonObject j, string key) =>
        j[key] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;
    static string? Str(JsonObject j, string key) => j[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>The config names an architecture this runtime does not implement.</summary>
public sealed class NotSupportedArchitectureException(string architecture)
    : InvalidOperationException($"architecture '{architecture}' is not supported; supported: {string.Join(", ", ModelConfig.SupportedArchitectures)}");
