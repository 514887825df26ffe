using static TorchSharp.torch;

namespace QService.Demo;

/// <summary>The preference objectives, on implicit rewards r = beta·(log pi(y|x) − log pi_ref(y|x)).</summary>
public static class PreferenceLoss
{
    /// <summary>
    /// DPO (Rafailov et al. 2023): −log σ(r_w − r_l). Only the margin matters, so both log-likelihoods may fall
    /// together, the chosen one included.
    /// NCA, pairwise form (Chen et al. 2024, arXiv 2402.05369): −log σ(r_w) − ½ log σ(−r_w) − ½ log σ(−r_l).
    /// It scores each response on its own, which keeps the chosen likelihood from being pushed down.
    /// </summary>
    public static Tensor Compute(string loss, Tensor chosenRewards, Tensor rejectedRewards) => loss switch
    {
        "dpo" => -nn.functional.logsigmoid(chosenRewards - rejectedRewards),
        "nca" => -nn.functional.logsigmoid(chosenRewards) - 0.5 * nn.functional.logsigmoid(-chosenRewards) - 0.5 * nn.functional.logsigmoid(-rejectedRewards),
        _ => throw new ArgumentException($"unknown loss '{loss}': use dpo or nca"),
    };
}
