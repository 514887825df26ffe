using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using QService.Client;
using QService.Client.Decoding;
using QService.Demo;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice decoding-report`: runs every decoding strategy many times on the demo task against a running
/// server (serving the demo pair) and writes docs/decoding.md with its figures: the true reward each
/// strategy reaches, what it costs, and how early Q picks the winner.
/// </summary>
static class DecodingReportCommand
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    const int Width = 2, Expansions = 4, Chunk = 8, MaxTokens = 64, InFlight = 16;
    static readonly double[] Fractions = [0.25, 0.5, 0.75, 1.0];

    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "a server serving the demo pair", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var decodes = new Option<int>("--decodes")
            { Description = "decodes per strategy (prompts in turn, a fresh seed each)", DefaultValueFactory = _ => 200 };
        var docs = new Option<string>("--docs") { Description = "folder to write decoding.md and its figures to", DefaultValueFactory = _ => "docs" };
        var cmd = new Command("decoding-report",
            "Compare decoding strategies on the demo task (true reward, cost, Q's early ranking) and write docs/decoding.md.")
            { server, decodes, docs };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(decodes), r.GetValue(docs)!).GetAwaiter().GetResult()));
        return cmd;
    }

    sealed record Outcome(DecodeResult Result, int TrueReward, TimeSpan Elapsed);
    sealed record Run(string Name, string What, List<Outcome> Outcomes, TimeSpan Wall);

    static async Task<int> Execute(string address, int decodes, string docs)
    {
        if (decodes < 1) throw new ArgumentException($"--decodes is {decodes}; it must be at least 1");
        using var channel = new QServiceChannel(address);
        var info = await channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        var scorer = channel.Scorer;
        ServiceSampler From(SampleFrom from, double? alpha = null, string? stop = null) => new(scorer, new SamplingSettings(from, alpha, Stop: stop));
        (string What, IDecodingStrategy Strategy)[] strategies =
        [
            ("reference sampling", new SingleSample(From(SampleFrom.Reference), MaxTokens, "sample-reference")),
            ("policy sampling", new SingleSample(From(SampleFrom.Policy), MaxTokens, "sample-policy")),
            ("best-of-4 from the reference, by reward", new BestOfN(From(SampleFrom.Reference), 4, MaxTokens)),
            ("best-of-16 from the reference, by reward", new BestOfN(From(SampleFrom.Reference), 16, MaxTokens)),
            ($"chunk beam search from the reference: W={Width} beams, K={Expansions} continuations each, chunks of L={Chunk} tokens or up to \".\", by Q",
                new ChunkBeamSearch(From(SampleFrom.Reference, stop: "."), Width, Expansions, Chunk, MaxTokens)),
            ("guided sampling, alpha 1 (the policy, through the guided path)", new SingleSample(From(SampleFrom.Guided, 1), MaxTokens, "guided-a1")),
            ("guided sampling, alpha 2", new SingleSample(From(SampleFrom.Guided, 2), MaxTokens, "guided-a2")),
            ("guided sampling, alpha 4", new SingleSample(From(SampleFrom.Guided, 4), MaxTokens, "guided-a4")),
        ];
        var runs = new List<Run>();
        foreach (var (what, strategy) in strategies)
        {
            var run = await RunStrategy(strategy, what, decodes);
            runs.Add(run);
            Console.WriteLine($"{run.Name,-22} mean true reward {run.Outcomes.Average(o => o.TrueReward):+0.000;-0.000}  forward tokens " +
                $"{run.Outcomes.Average(o => o.Result.ForwardTokens),7:F1}  {run.Wall.TotalSeconds:F1} s");
        }
        Directory.CreateDirectory(docs);
        File.WriteAllText(Path.Combine(docs, "decoding.md"), Markdown(runs, decodes, info));
        File.WriteAllText(Path.Combine(docs, "decoding-q-ranking.svg"), SvgChart.Lines("How often Q on a prefix already ranks the final winner first",
            "fraction of each candidate's tokens", "share ranked first",
            [
                new SvgChart.Series("best-of-16: prefix Q among the 16", [.. Fractions.Select(f => (f, PrefixQRanksWinnerFirst(runs[3], f)))]),
                new SvgChart.Series("beam search: winner's ancestor in its round", [.. Fractions.Select(f => (f, BeamPrefixRankedFirst(runs[4], f)))]),
            ]));
        File.WriteAllText(Path.Combine(docs, "decoding-guidance.svg"), SvgChart.Lines("Guided sampling: true reward against alpha",
            "alpha (0 = reference, 1 = policy)", "true reward",
            [
                new SvgChart.Series("mean true reward", [(0, Mean(runs[0])), (1, Mean(runs[5])), (2, Mean(runs[6])), (4, Mean(runs[7]))]),
                new SvgChart.Series("share with reward > 0",
                    [(0, Positive(runs[0])), (1, Positive(runs[5])), (2, Positive(runs[6])), (4, Positive(runs[7]))], Dashed: true),
            ]));
        Console.WriteLine($"wrote {Path.Combine(docs, "decoding.md")} and its figures");
        return 0;
    }

    /// <summary>The decodes of one strategy, prompts in turn with seeds 1..n, <see cref="InFlight"/> at a time (the server batches them).</summary>
    static async Task<Run> RunStrategy(IDecodingStrategy strategy, string what, int decodes)
    {
        var outcomes = new Outcome[decodes];
        using var gate = new SemaphoreSlim(InFlight);
        using var progress = new TerminalProgress(strategy.Name, decodes);
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, decodes).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                string prompt = ReviewLanguage.PromptFor(ReviewLanguage.Products[i % ReviewLanguage.Products.Length]);
                var sw = Stopwatch.StartNew();
                var result = await strategy.DecodeAsync(prompt, seed: (ulong)(i + 1));
                outcomes[i] = new Outcome(result, ReviewLanguage.Reward(result.Text), sw.Elapsed);
                progress.Advance();
            }
            finally { gate.Release(); }
        }));
        return new Run(strategy.Name, what, [.. outcomes], wall.Elapsed);
    }

    static double Mean(Run run) => run.Outcomes.Average(o => o.TrueReward);
    static double Positive(Run run) => run.Outcomes.Count(o => o.TrueReward > 0) / (double)run.Outcomes.Count;

    /// <summary>
    /// Share of best-of-16 decodes where Q after a fraction of each candidate's tokens ranks the eventual winner
    /// above every other distinct candidate; ties at the top count as 1/(number tied).
    /// </summary>
    static double PrefixQRanksWinnerFirst(Run run, double fraction)
    {
        double total = 0;
        foreach (var r in run.Outcomes.Select(o => o.Result))
        {
            var winner = new Candidate(r.TokenIds, r.Text, r.Credits, r.Reward, true);
            var candidates = new[] { winner }.Concat(r.Rejected).DistinctBy(c => string.Join(',', c.TokenIds)).ToList();
            double[] q = [.. candidates.Select(c => c.Credits.Take((int)Math.Ceiling(fraction * c.Credits.Length)).Sum(x => (double)x))];
            double best = q.Max();
            if (q[0] >= best - 1e-9) total += 1.0 / q.Count(v => v >= best - 1e-9);
        }
        return total / run.Outcomes.Count;
    }

    /// <summary>
    /// Share of beam searches where, in the first round in which the eventual winner's prefix reached a fraction
    /// of its final tokens, that prefix already had the round's highest Q (ties count 1/(number tied)).
    /// </summary>
    static double BeamPrefixRankedFirst(Run run, double fraction)
    {
        double total = 0;
        foreach (var r in run.Outcomes.Select(o => o.Result))
        {
            int needed = (int)Math.Ceiling(fraction * r.TokenIds.Length);
            foreach (var round in r.Rounds)
            {
                var ancestor = round.Candidates.FirstOrDefault(c => c.TokenIds.Length >= needed && r.TokenIds.AsSpan().StartsWith(c.TokenIds));
                if (ancestor is null) continue;
                var distinct = round.Candidates.DistinctBy(c => string.Join(',', c.TokenIds)).ToList();
                double best = distinct.Max(c => c.Q);
                if (ancestor.Q >= best - 1e-9) total += 1.0 / distinct.Count(c => c.Q >= best - 1e-9);
                break;
            }
        }
        return total / run.Outcomes.Count;
    }

    static string Markdown(List<Run> runs, int decodes, ModelInfo info)
    {
        string F(double v, string format = "+0.000;-0.000") => v.ToString(format, Inv);
        var md = new StringBuilder();
        md.Append("# Reward-guided decoding on the demo task\n\n");
        md.Append($"Generated by `qservice decoding-report` against a server on the demo pair (`{info.PolicyModel}` vs `{info.ReferenceModel}`, " +
            $"beta {F(info.Beta, "0.###")}); every number below is recomputed by that command. ");
        md.Append($"Each strategy decoded {decodes} responses: the prompts `Review of the {{product}}:` in turn, seeds 1..{decodes}, " +
            $"at most {MaxTokens} tokens, temperature 1, {InFlight} decodes in flight (the server decodes them together). ");
        md.Append("The true reward is the demo language's own (`ReviewLanguage.Reward`: +1 per good clause, -1 per bad one); the strategies never see it, " +
            "only the pair's credits.\n\n");
        md.Append("| strategy | what it does | mean true reward | reward > 0 | forward tokens per response | wall time, " +
            "all decodes |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
        foreach (var run in runs)
            md.Append($"| `{run.Name}` | {run.What} | {F(Mean(run))} | {F(100 * Positive(run), "0.0")} % | " +
                $"{F(run.Outcomes.Average(o => o.Result.ForwardTokens), "0.0")} | {F(run.Wall.TotalSeconds, "0.0")} s |\n");
        md.Append("\nForward tokens count the positions each model ran per response, with every prompt counted each time it was sent (the server's prefix " +
            "cache spares some of that work, so this is an upper bound); they are what a strategy costs relative to plain sampling.\n\n");

        md.Append("## How early Q picks the winner\n\n![Q ranking](decoding-q-ranking.svg)\n\n");
        md.Append("| measure | Q after 25 % of the tokens | 50 % | 75 % | 100 % |\n| --- | ---: | ---: | ---: | ---: |\n");
        md.Append($"| best-of-16: the winner's prefix has the highest Q among the distinct candidates' prefixes | " +
            $"{string.Join(" | ", Fractions.Select(f => F(100 * PrefixQRanksWinnerFirst(runs[3], f), "0.0") + " %"))} |\n");
        md.Append($"| beam search: the winner's ancestor has the highest Q of its round | " +
            $"{string.Join(" | ", Fractions.Select(f => F(100 * BeamPrefixRankedFirst(runs[4], f), "0.0") + " %"))} |\n");
        double chance = runs[3].Outcomes.Average(o => 1.0 / (1 + o.Result.Rejected.Count));
        md.Append($"\nQ after a fraction f of a candidate's tokens is the sum of its first ⌈f·T⌉ credits; identical candidates are counted once, " +
            $"and ties at the top count 1/(number tied). For best-of-16, chance is {F(100 * chance, "0.0")} % and at 100 % the winner is first by " +
            "construction; the earlier columns show how much of the final ranking is visible on prefixes, which is what lets a " +
            "chunk-level search prune early. ");
        md.Append("For the beam search, the round in which the winner's prefix first reached the fraction is taken: " +
            "was its ancestor already the best-ranked partial response then? A winner that was only second best early is still kept (W = " + Width + "), " +
            "which is the point of a beam.\n\n");
        md.Append("## Guidance strength\n\n![Guided sampling](decoding-guidance.svg)\n\n");
        md.Append($"Alpha 0 is reference sampling and alpha 1 policy sampling (rows `sample-reference` and `guided-a1`); " +
            "alpha 2 and 4 sample from pi_ref · exp((alpha/beta) · credit), leaning further toward what the pair's credits favour, " +
            "at the cost of one decode.\n\n");
        md.Append("## What this shows\n\n");
        md.Append(Findings(runs));
        return md.ToString();
    }

    /// <summary>The expectation (search and guidance beat policy sampling, which beats reference sampling), checked against the numbers.</summary>
    static string Findings(List<Run> runs)
    {
        var text = new StringBuilder();
        double reference = Mean(runs[0]), policy = Mean(runs[1]);
        text.Append(policy > reference
            ? $"- Policy sampling beats reference sampling ({policy:+0.000;-0.000} against {reference:+0.000;-0.000}): " +
                "the DPO/NCA training moved the policy toward the reward.\n"
            : $"- Policy sampling does **not** beat reference sampling here ({policy:+0.000;-0.000} against {reference:+0.000;-0.000}).\n");
        foreach (var run in runs.Skip(2).Where(r => r != runs[5]))
        {
            double mean = Mean(run);
            text.Append(mean > policy
                ? $"- `{run.Name}` beats policy sampling ({mean:+0.000;-0.000}), at " +
                    $"{run.Outcomes.Average(o => o.Result.ForwardTokens) / runs[1].Outcomes.Average(o => o.Result.ForwardTokens):0.0}x its forward tokens.\n"
                : $"- `{run.Name}` does **not** beat policy sampling ({mean:+0.000;-0.000} against {policy:+0.000;-0.000}).\n");
            if (run == runs[2] && mean < policy)
                text.Append("  Best-of-N from the reference can only pick among the reference's reviews; with 4 candidates the best one is still worse on " +
                    "average than a policy sample, each of which the training has already moved toward the reward."
                    + (Mean(runs[3]) > policy ? " With 16 it gets ahead." : "") + "\n");
        }
        bool same = runs[1].Outcomes.Zip(runs[5].Outcomes).All(p => p.First.Result.TokenIds.SequenceEqual(p.Second.Result.TokenIds));
        text.Append(same
            ? "- `guided-a1` gave exactly the responses of `sample-policy` (same seeds): alpha 1 is the policy, through the guided path.\n"
            : "- `guided-a1` did **not** give the responses of `sample-policy` with the same seeds, though alpha 1 is the policy.\n");
        text.Append($"- Guidance strength: mean true reward {Mean(runs[5]):+0.000;-0.000} / {Mean(runs[6]):+0.000;-0.000} / {Mean(runs[7]):+0.000;-0.000} " +
            $"and reward > 0 in {100 * Positive(runs[5]):0.0} / {100 * Positive(runs[6]):0.0} / {100 * Positive(runs[7]):0.0} % of " +
            "responses at alpha 1 / 2 / 4.");
        text.Append(Mean(runs[7]) < Mean(runs[6]) || Positive(runs[7]) < Positive(runs[6])
            ? " Pushing past alpha 2 stops paying: the guided distribution leans on the credits beyond what the policy was trained to, " +
                "and the credits are an estimate learnt from preference pairs, not the reward itself.\n"
            : "\n");
        text.Append($"- Q on prefixes carries the final ranking early: after half of the tokens it already picks the best-of-16 winner in " +
            $"{100 * PrefixQRanksWinnerFirst(runs[3], 0.5):0.0} % of decodes (chance " +
            $"{100 * runs[3].Outcomes.Average(o => 1.0 / (1 + o.Result.Rejected.Count)):0.0} %).\n");
        return text.ToString();
    }
}
