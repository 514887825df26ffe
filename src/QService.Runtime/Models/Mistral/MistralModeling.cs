using static TorchSharp.torch;
using QService.Runtime.Models.Llama;

namespace QService.Runtime.Models.Mistral;

// Diff vs Llama: sliding-window attention. Every query sees at most `sliding_window` keys (itself
// included); ModelConfig sets SlidingWindow for Mistral and Attention.CausalSdpa applies it.
// Everything else (GQA, RoPE, RMSNorm, SwiGLU MLP, untied head) is Llama's.
public sealed class MistralForCausalLM(ModelConfig c, ScalarType dtype, Device device)
    : LlamaForCausalLM(c, qkvBias: false, outputBias: false, dtype, device);
