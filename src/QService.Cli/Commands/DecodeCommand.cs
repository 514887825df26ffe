using System.CommandLine;
using System.Text.Json;
using Grpc.Core;
using QService.Client;
using QService.Client.Decoding;
using QService.Client.Rendering;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>`qservice decode`: generates a response on a running QService with a reward-guided strategy and shows its credits and Q.</summary>
static class DecodeCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "server address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var prompt = new Option<string>("--prompt") { Description = "the prompt", Required = true };
        var strategy = new Option<string>("--strategy") { Description = "sample | bon | beam | guided", DefaultValueFactory = _ => "sample" };
        var from = new Option<string?>("--from")
            { Description = "policy | reference: what sample, bon and beam draw from (default: policy for sample, reference for bon and beam)" };
        var n = new Option<int>("--n") { Description = "bon: responses to choose from", DefaultValueFactory = _ => 4 };
        var width = new Option<int>("--width") { Description = "beam: beams kept (W)", DefaultValueFactory = _ => 2 };
        var expansions = new Option<int>("--expansions") { Description = "beam: continuations per beam (K)", DefaultValueFactory = _ => 4 };
        var chunk = new Option<int>("--chunk") { Description = "beam: tokens per chunk (L)", DefaultValueFactory = _ => 8 };
        var delimiter = new Option<string?>("--delimiter") { Description = "beam: a chunk also ends at this text (e.g. \". \")" };
        var alpha = new Option<double>("--alpha") { Description = "guided: p ~ pi_ref^(1-alpha) * pi^alpha", DefaultValueFactory = _ => 2 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "most response tokens", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { DefaultValueFactory = _ => 1 };
        var topK = new Option<int>("--top-k") { Description = "0 = off", DefaultValueFactory = _ => 0 };
        var topP = new Option<double>("--top-p") { Description = "1 = off", DefaultValueFactory = _ => 1 };
        var seed = new Option<ulong?>("--seed") { Description = "the same seed gives the same response (default: random)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object: text, token_ids, credits, reward, strategy, forward_tokens" };
        var html = new Option<string?>("--html") { Description = "also write the chosen and rejected responses as a page (heatmaps, Q curves)" };
        var rejected = new Option<bool>("--show-rejected") { Description = "also print the candidates the strategy rejected, with their Q" };
        var cmd = new Command("decode", "Generate a response with reward-guided decoding (sampling, best-of-N, chunk beam search, " +
            "guided sampling) and show its credits.")
            { server, prompt, strategy, from, n, width, expansions, chunk, delimiter, alpha, maxTokens, temperature, topK, topP, seed, json, html, rejected };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var spec = new StrategySpec(r.GetValue(strategy)!, r.GetValue(from), r.GetValue(n), r.GetValue(width), r.GetValue(expansions), r.GetValue(chunk),
                r.GetValue(delimiter), r.GetValue(alpha), r.GetValue(maxTokens),
                new SamplingSettings(Temperature: r.GetValue(temperature), TopK: r.GetValue(topK), TopP: r.GetValue(topP)));
            return Execute(r.GetValue(server)!, r.GetValue(prompt)!, spec, r.GetValue(seed) ?? (ulong)Random.Shared.NextInt64(), r.GetValue(json),
                r.GetValue(html), r.GetValue(rejected));
        }));
        return cmd;
    }

    static int Execute(string address, string prompt, StrategySpec spec, ulong seed, bool json, string? htmlFile, bool showRejected)
    {
        using var channel = new QServiceChannel(address);
        var decoder = spec.Build(channel.Scorer);
        DecodeResult result;
        ScoreResponse shown;
        try
        {
            result = decoder.DecodeAsync(prompt, seed).GetAwaiter().GetResult();
            shown = ScoreForDisplay(channel.Scorer, prompt, result, showRejected || htmlFile != null);
        }
        catch (RpcException e)
        {
            Console.Error.WriteLine($"error: {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                text = result.Text, token_ids = result.TokenIds, credits = result.Credits, reward = result.Reward,
                strategy = result.Strategy, forward_tokens = result.ForwardTokens, seed,
            }));
            return 0;
        }
        Console.WriteLine($"{result.Strategy} (seed {seed}): reward {Signed.Format(result.Reward)} over {result.TokenIds.Length} tokens, " +
            $"{result.ForwardTokens} forward tokens per model");
        Console.WriteLine($"prompt: {Display.Quote(prompt)}");
        Display.Heatmaps(shown.Results, item => $"{item.Id}: Q {Signed.Format(item.Reward)}", shown: showRejected ? null : 1);
        if (htmlFile != null)
        {
            File.WriteAllText(htmlFile, CreditHtmlPage.Render(prompt, shown));
            Console.WriteLine($"wrote {htmlFile}");
        }
        return 0;
    }

    /// <summary>The chosen response (and the rejected ones) scored with their token texts, for the heatmaps.</summary>
    static ScoreResponse ScoreForDisplay(QScorer.QScorerClient scorer, string prompt, DecodeResult result, bool withRejected)
    {
        var request = new ScoreRequest { IncludeTokenText = true };
        ScoreItem Item(string id, int[] tokens)
        {
            var item = new ScoreItem { Id = id, Prompt = prompt };
            item.ResponseTokenIds.Add(tokens);
            return item;
        }
        request.Items.Add(Item("chosen", result.TokenIds));
        if (withRejected)
            request.Items.Add(result.Rejected.Where(c => c.TokenIds.Length > 0).Select((c, i) => Item($"rejected {i + 1}", c.TokenIds)));
        return scorer.Score(request, deadline: DateTime.UtcNow.AddMinutes(2));
    }
}

/// <summary>A decoding strategy as the command line describes it.</summary>
sealed record StrategySpec(string Strategy, string? From, int N, int Width, int Expansions, int Chunk, string? Delimiter, double Alpha, int MaxTokens,
    SamplingSettings Sampling)
{
    public IDecodingStrategy Build(QScorer.QScorerClient scorer)
    {
        SampleFrom Source(SampleFrom fallback) => From?.ToLowerInvariant() switch
        {
            null => fallback,
            "policy" => SampleFrom.Policy,
            "reference" => SampleFrom.Reference,
            _ => throw new ArgumentException($"--from is '{From}'; use policy or reference"),
        };
        if (MaxTokens < 1) throw new ArgumentException($"--max-tokens is {MaxTokens}; it must be at least 1");
        return Strategy.ToLowerInvariant() switch
        {
            "sample" => new SingleSample(Sampler(scorer, Source(SampleFrom.Policy)), MaxTokens,
                $"sample-{Source(SampleFrom.Policy).ToString().ToLowerInvariant()}"),
            "guided" => new SingleSample(new ServiceSampler(scorer, Sampling with { From = SampleFrom.Guided, Alpha = Alpha }), MaxTokens, $"guided-a{Alpha}"),
            "bon" => N >= 1 ? new BestOfN(Sampler(scorer, Source(SampleFrom.Reference)), N, MaxTokens)
                : throw new ArgumentException($"--n is {N}; it must be at least 1"),
            "beam" => Width >= 1 && Expansions >= 1 && Chunk >= 1
                ? new ChunkBeamSearch(Sampler(scorer, Source(SampleFrom.Reference), Delimiter), Width, Expansions, Chunk, MaxTokens)
                : throw new ArgumentException("--width, --expansions and --chunk must each be at least 1"),
            _ => throw new ArgumentException($"--strategy is '{Strategy}'; use sample, bon, beam or guided"),
        };
    }

    ServiceSampler Sampler(QScorer.QScorerClient scorer, SampleFrom from, string? stop = null) =>
        new(scorer, Sampling with { From = from, Stop = stop });
}
