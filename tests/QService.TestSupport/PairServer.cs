using System.Text.Json;
using Xunit;

namespace QService.TestSupport;

/// <summary>
/// One server on the HF reference DPO pair (llama-gqa policy/reference, token ids only), shared by the
/// tests of a collection, with the reference numbers of pair_expected.json.
/// </summary>
public sealed class PairServer : IAsyncLifetime
{
    public static string PolicyPath => Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "policy");
    public static string ReferencePath => Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "reference");

    public ServerProcess Server { get; private set; } = null!;
    public JsonElement Expected { get; } =
        JsonDocument.Parse(File.ReadAllText(Fixtures.Path("hf-reference", "llama-gqa-dpo-pair", "pair_expected.json"))).RootElement;

    public async Task InitializeAsync() =>
        Server = await ServerProcess.StartServingAsync("--policy", PolicyPath, "--reference", ReferencePath, "--beta", "0.1",
            "--Limits:MaxItemsPerRequest=64", "--Limits:MaxTokensPerRequest=4000", "--Batching:MaxQueueItems=1000",
            // Generous, so that concurrent callers meet in a batch even when the test machine is busy.
            "--max-queue-delay-ms", "50");

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>A server on the bundled default pair (text input through the GPT-2 tokenizer).</summary>
public sealed class DefaultServer : IAsyncLifetime
{
    public ServerProcess Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ServerProcess.StartServingAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
