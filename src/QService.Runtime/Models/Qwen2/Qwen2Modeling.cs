using static TorchSharp.torch;
using QService.Runtime.Models.Llama;

namespace QService.Runtime.Models.Qwen2;

// Diff vs Llama: q/k/v projections carry biases, o_proj does not (main diff with Llama).
// Sliding-window attention only when config.use_sliding_window is true (ModelConfig).
public sealed class Qwen2ForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : LlamaForCausalLM(c, qkvBias: true, outputBias: false, dtype, device);
