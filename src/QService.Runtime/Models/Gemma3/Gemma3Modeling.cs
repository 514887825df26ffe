using static TorchSharp.torch;
using QService.Runtime.Models.Gemma2;

namespace QService.Runtime.Models.Gemma3;

// Gemma3ForCausalLM (model_type gemma3_text). Diff vs Gemma2, as HF's modular_gemma3: per-head q_norm/k_norm
// ((1 + w) RMSNorm over head_dim) before RoPE; no soft-capping (both caps null in its config); sliding layers
// (layer_types) use RoPE with base rope_local_base_freq and no scaling, full layers rope_theta and rope_scaling.
// ModelConfig reads those; the Gemma2 modules apply them.
public sealed class Gemma3ForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : Gemma2ForCausalLM(c, perHeadNorms: true, dtype, device);
