namespace QService.Engine;

/// <summary>Which models to load, and how. Bound from configuration section "QService:Models".</summary>
public sealed class ModelOptions
{
    /// <summary>
    /// Folder of the DPO-trained policy (HuggingFace layout: config.json, *.safetensors, tokenizer.json).
    /// Empty: the bundled demo pair (models/demo) is used.
    /// </summary>
    public string? PolicyPath { get; set; }

    /// <summary>
    /// Several named policies scored against the one reference (instead of <see cref="PolicyPath"/>): each a full
    /// checkpoint or a LoRA adapter over the reference. The first is the default for requests that name none.
    /// On the command line: <c>--policy NAME=DIR</c>, repeated.
    /// </summary>
    public List<PolicyOption> Policies { get; set; } = [];

    /// <summary>
    /// Folder of the reference (SFT) model the policies were trained from. Must share their tokenizer. May be left
    /// empty when the policies are LoRA adapters: the reference is then their base (base_model_name_or_path).
    /// </summary>
    public string? ReferencePath { get; set; }

    /// <summary>Tokenizer folder (tokenizer.json [+ tokenizer_config.json]); default: the policy folder.</summary>
    public string? TokenizerPath { get; set; }

    /// <summary>"auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; set; } = "auto";

    /// <summary>
    /// LibTorch intra-op threads for the forward passes; 0 = one per physical core (SMT siblings only contend
    /// for the same matmul units). The two models run one after the other on one thread, so they never
    /// compete for these. Lower it when other processes share the cores: spinning OpenMP workers slow
    /// everyone down when oversubscribed.
    /// </summary>
    public int Threads { get; set; }

    /// <summary>
    /// On x86-64 CPUs that are not Intel but have AVX2 or AVX-512 (AMD), let LibTorch's MKL use the matmul
    /// kernels its vendor check keeps for Intel CPUs (about 1.5x the float32 matmul rate with AVX-512, 1.1x
    /// with AVX2 only). Default true; it does nothing on other CPUs. QSERVICE_MKL_VENDOR_OVERRIDE=off wins.
    /// </summary>
    public bool MklVendorOverride { get; set; } = true;

    /// <summary>
    /// Make malloc keep freed memory for the next forward pass instead of returning it to the kernel and
    /// page-faulting it back in. Resident memory stays at the peak of a pass. Default true (glibc only).
    /// </summary>
    public bool KeepFreedMemory { get; set; } = true;

    /// <summary>
    /// Compute dtype: float32 (default, right for CPUs), bfloat16 (GPUs, and CPUs with avx512_bf16 or AMX; refused
    /// on other CPUs, which only emulate it) or float16 (GPUs).
    /// </summary>
    public string Dtype { get; set; } = "float32";

    /// <summary>
    /// The beta of credit = beta·(log pi − log pi_ref), used when a request does not set one. Empty: the
    /// value recorded with the pair (qservice-pair.json next to the policy), else 0.1.
    /// </summary>
    public double? Beta { get; set; }
}

/// <summary>One named policy of <see cref="ModelOptions.Policies"/>.</summary>
public sealed class PolicyOption
{
    /// <summary>What requests call it (ScoreItem.policy): letters, digits, '.', '_' or '-', at most 64.</summary>
    public string Name { get; set; } = "";

    /// <summary>A model folder or hub id: a full checkpoint, or a PEFT LoRA adapter folder over the reference.</summary>
    public string Path { get; set; } = "";
}

/// <summary>
/// The dynamic batcher's knobs (section "QService:Batching"), in the spirit of Triton's dynamic batcher
/// and TEI's router: a batch closes when it reaches its token budget or when its oldest item has waited
/// MaxQueueDelayMs, whichever comes first.
/// </summary>
public sealed class BatchingOptions
{
    /// <summary>
    /// Token budget of one batch, counting each token twice (it runs through the policy and the reference).
    /// Larger batches use the matmul units better but raise latency and memory; an item whose own cost
    /// exceeds it can never run and is refused at once. Default 16384 (e.g. 64 items of 128 tokens).
    /// </summary>
    public int MaxBatchTokens { get; set; } = 16384;

    /// <summary>Most sequences in one forward pass. Default 64.</summary>
    public int MaxBatchSequences { get; set; } = 64;

    /// <summary>
    /// How long the oldest queued item may wait for others to join its batch, in milliseconds. A few ms
    /// buys large batches under load and costs an idle caller almost nothing. Default 5.
    /// </summary>
    public double MaxQueueDelayMs { get; set; } = 5;

    /// <summary>
    /// Items (sequences) allowed to wait in the queue. When full, new requests fail at once with
    /// RESOURCE_EXHAUSTED instead of waiting: a caller can retry or shed load. Default 4096.
    /// </summary>
    public int MaxQueueItems { get; set; } = 4096;

    /// <summary>
    /// Tokens allowed to wait in the queue (items' prompt + response, samples' prompts times n); beyond it,
    /// RESOURCE_EXHAUSTED as for items. Default 1048576.
    /// </summary>
    public long MaxQueueTokens { get; set; } = 1 << 20;

    /// <summary>
    /// Padding allowed inside one forward pass, as a fraction of its real tokens: items sorted by length are
    /// split into separate passes when the padding to the longest would exceed this. Default 0.25.
    /// </summary>
    public double MaxPaddingFraction { get; set; } = 0.25;

    /// <summary>
    /// Samples decoded together (continuous batching); further Sample requests wait for room. Each holds its
    /// keys and values for its whole length in both models. Default 64.
    /// </summary>
    public int MaxRunningSamples { get; set; } = 64;

    /// <summary>Consecutive failed forward passes after which readiness reports not ready (until a pass succeeds). Default 3.</summary>
    public int FailuresBeforeUnready { get; set; } = 3;

    /// <summary>
    /// A forward pass or decoding step running longer than this many seconds is taken as hung: /healthz turns
    /// 503 with the reason, so that an orchestrator restarts the process. Default 300.
    /// </summary>
    public double MaxPassSeconds { get; set; } = 300;
}

/// <summary>
/// The prefix cache (section "QService:PrefixCache"): keys and values of token prefixes already computed, kept
/// per model in blocks and reused by any later item that starts with them (a decoder extending its response,
/// candidates sharing a prompt), so that an item costs only its new tokens. Results are the same as without it.
/// </summary>
public sealed class PrefixCacheOptions
{
    /// <summary>Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Bytes the cache may hold for both models together; least recently used blocks are evicted beyond it.
    /// Default (empty): 15 % of the memory available to the process.
    /// </summary>
    public long? MaxBytes { get; set; }

    /// <summary>Tokens per block: prefixes are reused in whole blocks. Default 16.</summary>
    public int BlockSize { get; set; } = 16;

    public long EffectiveMaxBytes => MaxBytes ?? (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * 0.15);
}

/// <summary>Per-request limits (section "QService:Limits"); exceeding them is RESOURCE_EXHAUSTED.</summary>
public sealed class RequestLimits
{
    /// <summary>Items in one Score request. Default 256.</summary>
    public int MaxItemsPerRequest { get; set; } = 256;

    /// <summary>Prompt + response tokens summed over one request's items. Default 131072.</summary>
    public int MaxTokensPerRequest { get; set; } = 131072;

    /// <summary>A ScoreStream that receives no message for this many seconds ends (DEADLINE_EXCEEDED). Default 300.</summary>
    public double StreamIdleSeconds { get; set; } = 300;

    /// <summary>Messages one ScoreStream may carry; then it ends (RESOURCE_EXHAUSTED) and the client opens another. Default 100000.</summary>
    public int MaxStreamMessages { get; set; } = 100_000;

    /// <summary>Samples (n) in one Sample request. Default 256.</summary>
    public int MaxSamplesPerRequest { get; set; } = 256;

    /// <summary>Stop strings in one Sample request. Default 16.</summary>
    public int MaxStopStrings { get; set; } = 16;

    /// <summary>Characters in one stop string. Default 64.</summary>
    public int MaxStopLength { get; set; } = 64;
}
