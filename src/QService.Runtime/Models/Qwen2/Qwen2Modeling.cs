using static TorchSharp.torch;
using QService.Runtime.Models.Llama;

namespace QService.Runtime.Models.Qwen2;

// Diff vs Llama: q/k/v projections carry biases, o_proj does not (main diff with Llama).
// Sliding-window attention only when config.use_sliding_window is true, and then on the layers from max_window_layers on
// (HF's default layer_types; ModelConfig), the first ones attending fully.
public sealed class Qwen2ForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : LlamaForCausalLM(c, qkvBias: true, outputBias: false, dtype, device);
