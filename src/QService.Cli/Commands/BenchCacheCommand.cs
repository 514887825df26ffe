using System.CommandLine;
using System.Diagnostics;
using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice bench-cache`: what the prefix cache buys decoding clients, against a running server, and with
/// `--compare-server` the same against a second server started with PrefixCache:Enabled=false, in one run.
/// Scenarios (random token ids; every measurement on fresh prefixes unless the scenario reuses them on purpose):
/// extend (a 512-token item, then the same plus 16 tokens, against 528 tokens fresh), decoders (callers each
/// extending their own 256-token prefix by 8 tokens per call), candidates (16 continuations of 16 tokens after
/// a shared 256-token prefix in one request, against one), nohit (64 + 64 token items that never repeat).
/// </summary>
static class BenchCacheCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "server with the prefix cache on", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var compare = new Option<string?>("--compare-server") { Description = "the same models served with PrefixCache:Enabled=false" };
        var callers = new Option<int>("--callers") { Description = "concurrent decoders (and no-hit callers)", DefaultValueFactory = _ => 32 };
        var seconds = new Option<double>("--seconds") { Description = "duration of the decoders and nohit scenarios", DefaultValueFactory = _ => 30 };
        var only = new Option<string>("--scenarios")
            { Description = "comma-separated subset of extend,decoders,candidates,nohit", DefaultValueFactory = _ => "extend,decoders,candidates,nohit" };
        var cmd = new Command("bench-cache", "Measure the prefix cache: extension latency, many decoders, shared candidates, cost when unused.")
            { server, compare, callers, seconds, only };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(compare), r.GetValue(callers), r.GetValue(seconds),
            [.. r.GetValue(only)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]).GetAwaiter().GetResult()));
        return cmd;
    }

    sealed record Figures(double ExtendRatio, double ExtendMs, double FreshMs, double DecoderTokensPerSecond,
        double CandidatesRatio, double NoHitTokensPerSecond);

    static async Task<int> Execute(string address, string? compareAddress, int callers, double seconds, string[] scenarios)
    {
        var unknown = scenarios.Except(["extend", "decoders", "candidates", "nohit"]).ToList();
        if (unknown.Count > 0) throw new ArgumentException($"--scenarios: unknown {string.Join(", ", unknown)}");
        var on = await Measure(address, callers, seconds, scenarios);
        var off = compareAddress is null ? null : await Measure(compareAddress, callers, seconds, scenarios);
        Console.WriteLine("| scenario | cache on | cache off | |");
        Console.WriteLine("| --- | ---: | ---: | --- |");
        string Off(Func<Figures, double> f, string format) => off is null ? "" : f(off).ToString(format);
        Console.WriteLine($"| extend: 512 + 16 tokens, as a share of 528 fresh | {on.ExtendRatio:P1} ({on.ExtendMs:F0} of {on.FreshMs:F0} ms) " +
            $"| {Off(f => f.ExtendRatio, "P1")} | target <= 10 % |");
        Console.WriteLine($"| decoders: new tokens/s, {callers} callers +8 on 256 | {on.DecoderTokensPerSecond:F1} | " +
            $"{Off(f => f.DecoderTokensPerSecond, "F1")} | " +
            (off is null ? "" : $"**{on.DecoderTokensPerSecond / off.DecoderTokensPerSecond:F1}x**, target >= 10x") + " |");
        Console.WriteLine($"| candidates: 16 x 16 after 256 shared, as a multiple of 1 | {on.CandidatesRatio:F2}x | " +
            $"{Off(f => f.CandidatesRatio, "F2")}x | target <= 2x |");
        Console.WriteLine($"| nohit: tokens/s, {callers} callers, 64 + 64 random | {on.NoHitTokensPerSecond:F0} | {Off(f => f.NoHitTokensPerSecond, "F0")} | " +
            (off is null ? "" : $"**{on.NoHitTokensPerSecond / off.NoHitTokensPerSecond:P1}** of cache off, target >= 95 %") + " |");
        return 0;
    }

    static async Task<Figures> Measure(string address, int callers, double seconds, string[] scenarios)
    {
        using var channel = new QServiceChannel(address);
        var scorer = channel.Scorer;
        var info = await scorer.GetModelInfoAsync(new GetModelInfoRequest());
        var rng = new Random(7);
        int[] Random(int n) => [.. Enumerable.Range(0, n).Select(_ => rng.Next(info.VocabSize))];
        async Task<double> TimeMs(params ScoreItem[] items)
        {
            var sw = Stopwatch.StartNew();
            await scorer.ScoreAsync(new ScoreRequest { Items = { items } });
            return sw.Elapsed.TotalMilliseconds;
        }
        static ScoreItem Item(int[] prompt, int[] response) => new() { PromptTokenIds = { prompt }, ResponseTokenIds = { response } };

        // Extend: 512 tokens scored, then 16 more; against 528 fresh tokens.
        var extend = new List<double> { double.NaN };
        var fresh = new List<double> { double.NaN };
        for (int rep = 0; rep < 3 && scenarios.Contains("extend"); rep++)
        {
            int[] prompt = Random(64), response = Random(448), more = Random(16);
            await TimeMs(Item(prompt, response));
            extend.Add(await TimeMs(Item(prompt, [.. response, .. more])));
            fresh.Add(await TimeMs(Item(Random(64), Random(464))));
        }
        double extendMs = Median(extend), freshMs = Median(fresh);

        // Decoders: each extends its own 256-token prefix by 8 tokens per call.
        long newTokens = 0;
        var decoders = Enumerable.Range(0, scenarios.Contains("decoders") ? callers : 0)
            .Select(_ => (Prompt: Random(64), Response: new List<int>(Random(192)), More: Enumerable.Range(0, 400).Select(_ => Random(8)).ToArray())).ToArray();
        await Task.WhenAll(decoders.Select(d => scorer.ScoreAsync(new ScoreRequest { Items = { Item(d.Prompt, [.. d.Response]) } }).ResponseAsync));
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(decoders.Select(async d =>
        {
            for (int step = 0; clock.Elapsed.TotalSeconds < seconds && step < d.More.Length; step++)
            {
                d.Response.AddRange(d.More[step]);
                if (d.Prompt.Length + d.Response.Count >= info.MaxContext) break;
                await scorer.ScoreAsync(new ScoreRequest { Items = { Item(d.Prompt, [.. d.Response]) } });
                Interlocked.Add(ref newTokens, 8);
            }
        }));
        double decoderRate = newTokens / clock.Elapsed.TotalSeconds;

        // Candidates: 16 continuations of 16 tokens after one 256-token prefix, in one request; against one.
        var ratios = new List<double> { double.NaN };
        for (int rep = 0; rep < 3 && scenarios.Contains("candidates"); rep++)
        {
            int[] prompt = Random(64), response = Random(192);
            double many = await TimeMs([.. Enumerable.Range(0, 16).Select(_ => Item(prompt, [.. response, .. Random(16)]))]);
            double one = await TimeMs(Item(Random(64), Random(208)));
            ratios.Add(many / one);
        }

        // No hits: items that never repeat, from many callers, as `qservice bench` sends them.
        long tokens = 0;
        clock.Restart();
        await Task.WhenAll(Enumerable.Range(0, scenarios.Contains("nohit") ? callers : 0).Select(async caller =>
        {
            var local = new Random(1000 + caller);
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                var item = Item([.. Enumerable.Range(0, 64).Select(_ => local.Next(info.VocabSize))],
                    [.. Enumerable.Range(0, 64).Select(_ => local.Next(info.VocabSize))]);
                await scorer.ScoreAsync(new ScoreRequest { Items = { item } });
                Interlocked.Add(ref tokens, 128);
            }
        }));
        return new Figures(extendMs / freshMs, extendMs, freshMs, decoderRate, Median(ratios), tokens / clock.Elapsed.TotalSeconds);
    }

    /// <summary>The median of the measured values (NaN placeholders dropped; NaN when the scenario did not run).</summary>
    static double Median(List<double> values)
    {
        var measured = values.Where(v => !double.IsNaN(v)).Order().ToList();
        return measured.Count == 0 ? double.NaN : measured[measured.Count / 2];
    }
}
