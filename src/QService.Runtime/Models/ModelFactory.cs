using QService.Runtime.Models.Gemma2;
using QService.Runtime.Models.Gemma3;
using QService.Runtime.Models.Gpt2;
using QService.Runtime.Models.Llama;
using QService.Runtime.Models.Mistral;
using QService.Runtime.Models.Olmo2;
using QService.Runtime.Models.Phi3;
using QService.Runtime.Models.Qwen2;
using QService.Runtime.Models.Qwen3;
using static TorchSharp.torch;

namespace QService.Runtime.Models;

/// <summary>The one place that maps a config's architecture to its module.</summary>
public static class ModelFactory
{
    public static CausalLm Create(ModelConfig config, ScalarType dtype, Device device) => config.Architecture switch
    {
        "LlamaForCausalLM" => new LlamaForCausalLM(config, dtype, device),
        "MistralForCausalLM" => new MistralForCausalLM(config, dtype, device),
        "Qwen2ForCausalLM" => new Qwen2ForCausalLM(config, dtype, device),
        "Qwen3ForCausalLM" => new Qwen3ForCausalLM(config, dtype, device),
        "Olmo2ForCausalLM" => new Olmo2ForCausalLM(config, dtype, device),
        "Gemma2ForCausalLM" => new Gemma2ForCausalLM(config, dtype, device),
        "Gemma3ForCausalLM" => new Gemma3ForCausalLM(config, dtype, device),
        "Phi3ForCausalLM" => new Phi3ForCausalLM(config, dtype, device),
        "GPT2LMHeadModel" => new Gpt2LMHeadModel(config, dtype, device),
        _ => throw new NotSupportedArchitectureException(config.Architecture),
    };
}
