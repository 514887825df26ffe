using Grpc.Core;
using QService.Protos.V1;
using QService.Runtime.Tokenization;

namespace QService.Host.Tests;

/// <summary>Sample over real sockets on the bundled demo pair: the distribution, consistency with Score, seeds, stopping, cancellation, bad input.</summary>
[Collection(nameof(DefaultServerCollection))]
public class SampleTests(DefaultServer fixture)
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;
    const string Prompt = "Review of the phone:";
    static ScoreItem Item(string response = "") => new() { Id = "x", Prompt = Prompt, Response = response };

    /// <summary>
    /// p(v) ∝ exp(((1−α)·log pi_ref + α·log pi)/T), cut to top_k, then to the smallest top set reaching top_p: the
    /// definition, from NextTokens' numbers.
    /// </summary>
    async Task<double[]> ExactDistribution(ScoreItem item, double alpha, double temperature, int topK, double topP)
    {
        var all = (await _scorer.NextTokensAsync(new NextTokensRequest { Items = { item }, TopK = 384 })).Results[0].Candidates;
        var p = new double[all.Count];
        foreach (var c in all) p[c.Id] = Math.Exp(((1 - alpha) * c.ReferenceLogprob + alpha * c.PolicyLogprob) / temperature);
        var order = Enumerable.Range(0, p.Length).OrderByDescending(v => p[v]).ThenBy(v => v).ToList();
        if (topK > 0) order = order.Take(topK).ToList();
        if (topP < 1)
        {
            double kept = order.Sum(v => p[v]), cumulative = 0;
            int keep = order.FindIndex(v => (cumulative += p[v]) >= topP * kept) + 1;
            order = order.Take(keep).ToList();
        }
        var q = new double[p.Length];
        double total = order.Sum(v => p[v]);
        foreach (int v in order) q[v] = p[v] / total;
        return q;
    }

    /// <summary>Pearson's chi-square p-value of the counts against the probabilities, bins with fewer than 5 expected merged into one.</summary>
    static double ChiSquarePValue(long[] counts, double[] probabilities)
    {
        long n = counts.Sum();
        double statistic = 0, restExpected = 0;
        long restObserved = 0;
        int bins = 0;
        for (int v = 0; v < counts.Length; v++)
        {
            double expected = n * probabilities[v];
            if (expected >= 5) { statistic += Math.Pow(counts[v] - expected, 2) / expected; bins++; }
            else { restExpected += expected; restObserved += counts[v]; }
        }
        if (restExpected > 0)
        {
            if (restExpected < 1e-9 && restObserved > 0) return 0; // drew a token the distribution rules out
            if (restExpected >= 1e-9) { statistic += Math.Pow(restObserved - restExpected, 2) / restExpected; bins++; }
        }
        int df = bins - 1;
        // Wilson–Hilferty: (X/df)^(1/3) is close to normal with mean 1 − 2/(9df) and variance 2/(9df).
        double z = (Math.Cbrt(statistic / df) - (1 - 2.0 / (9 * df))) / Math.Sqrt(2.0 / (9 * df));
        return 0.5 * Erfc(z / Math.Sqrt(2));
    }

    /// <summary>Abramowitz and Stegun 7.1.26 (error below 1.5e-7).</summary>
    static double Erfc(double x)
    {
        if (x < 0) return 2 - Erfc(-x);
        double t = 1 / (1 + 0.3275911 * x);
        double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        return poly * Math.Exp(-x * x);
    }

    async Task<long[]> DrawFirstTokens(ScoreItem item, SampleFrom from, double? alpha, double temperature, int topK, double topP, int draws)
    {
        var counts = new long[384];
        using var gate = new SemaphoreSlim(4); // within the queue's bound
        var requests = Enumerable.Range(0, draws / 256).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
            var request = new SampleRequest
            {
                Item = item, N = 256, SampleFrom = from, Temperature = (float)temperature, TopK = topK, TopP = (float)topP,
                MaxNewTokens = 1, Seed = (ulong)(7919 * i + 17),
            };
            if (alpha is double a) request.Alpha = (float)a;
            return await _scorer.SampleAsync(request);
            }
            finally { gate.Release(); }
        });
        foreach (var reply in await Task.WhenAll(requests))
            foreach (var sample in reply.Samples) counts[sample.Scores.TokenIds[0]]++;
        return counts;
    }

    [Theory]
    [InlineData(SampleFrom.Reference, null, 1.0, 0, 1.0)]
    [InlineData(SampleFrom.Policy, null, 0.8, 50, 1.0)]
    [InlineData(SampleFrom.Guided, 3.0, 1.2, 0, 0.9)]
    [InlineData(SampleFrom.Guided, 1.0, 1.0, 20, 0.95)]
    public async Task FirstTokens_FollowTheGuidedDistribution_ByChiSquare(SampleFrom from, double? alpha, double temperature, int topK, double topP)
    {
        var item = Item(" The battery is");
        double exactAlpha = from switch { SampleFrom.Reference => 0, SampleFrom.Policy => 1, _ => alpha!.Value };
        var exact = await ExactDistribution(item, exactAlpha, temperature, topK, topP);
        var counts = await DrawFirstTokens(item, from, alpha, temperature, topK, topP, draws: 20480);
        double p = ChiSquarePValue(counts, exact);
        Assert.True(p > 0.001, $"chi-square p = {p}: the samples do not follow the distribution");
        // The test can fail: the same draws against the distribution of another alpha are rejected.
        var other = await ExactDistribution(item, exactAlpha < 2 ? exactAlpha + 2 : 0, temperature, topK, topP);
        Assert.True(ChiSquarePValue(counts, other) < 1e-6, "the chi-square test cannot tell two alphas apart");
    }

    [Fact]
    public async Task ASamplesNumbers_EqualScoreOnTheSameTokens()
    {
        var reply = await _scorer.SampleAsync(new SampleRequest
        {
            Item = Item(" The screen"), N = 4, SampleFrom = SampleFrom.Guided, Alpha = 2, MaxNewTokens = 24, Seed = 5, StepDelimiter = " ",
        });
        using var tokenizer = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        int[] prompt = tokenizer.Encode(Prompt, addSpecialTokens: true).Ids, partial = tokenizer.Encode(" The screen", addSpecialTokens: false).Ids;
        Assert.Equal(prompt.Length + partial.Length, reply.PrefixTokens);
        foreach (var sample in reply.Samples)
        {
            var s = sample.Scores;
            Assert.Equal(tokenizer.Decode([.. s.TokenIds], skipSpecialTokens: true), sample.Text);
            var scored = (await _scorer.ScoreAsync(new ScoreRequest
            {
                Items = { new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { partial.Concat(s.TokenIds) } } },
            })).Results[0];
            // A prompt as text with the response as ids gives the same numbers.
            var mixed = (await _scorer.ScoreAsync(new ScoreRequest
            {
                Items = { new ScoreItem { Prompt = Prompt, ResponseTokenIds = { partial.Concat(s.TokenIds) } } },
            })).Results[0];
            Assert.Equal(scored.TokenIds, mixed.TokenIds);
            Assert.All(scored.Credits.Zip(mixed.Credits), c => Assert.Equal(c.First, c.Second, 1e-5f));
            var tail = scored.TokenIds.Count - s.TokenIds.Count;
            Assert.Equal(scored.TokenIds.Skip(tail), s.TokenIds);
            for (int t = 0; t < s.TokenIds.Count; t++)
            {
                Assert.Equal(scored.PolicyLogprobs[tail + t], s.PolicyLogprobs[t], 1e-5f);
                Assert.Equal(scored.ReferenceLogprobs[tail + t], s.ReferenceLogprobs[t], 1e-5f);
                Assert.Equal(scored.Credits[tail + t], s.Credits[t], 1e-5f);
                Assert.Equal(scored.QValues[tail + t] - (tail > 0 ? scored.QValues[tail - 1] : 0), s.QValues[t], 1e-4f);
            }
            Assert.Equal(s.Credits.Sum(c => (double)c), s.Reward, 1e-4);
            Assert.Equal(s.Reward, s.StepRewards.Sum(), 1e-9);
            Assert.NotEmpty(s.StepEnds);
        }
    }

    [Fact]
    public async Task TheSameSeed_GivesTheSameSamples_AloneAndUnderConcurrency()
    {
        SampleRequest Request(ulong seed) => new() { Item = Item(), N = 3, MaxNewTokens = 20, Temperature = 1.5f, Seed = seed };
        var alone = await _scorer.SampleAsync(Request(11));
        var crowd = Enumerable.Range(0, 8).Select(i => _scorer.SampleAsync(Request((ulong)(100 + i))).ResponseAsync).ToList();
        var together = await _scorer.SampleAsync(Request(11));
        var others = await Task.WhenAll(crowd);
        Assert.Equal(11UL, together.Seed);
        for (int i = 0; i < 3; i++) Assert.Equal(alone.Samples[i].Scores.TokenIds, together.Samples[i].Scores.TokenIds);
        Assert.NotEqual(alone.Samples[0].Scores.TokenIds, others[0].Samples[0].Scores.TokenIds);

        // Without a seed, the one returned reproduces the samples.
        var unseeded = await _scorer.SampleAsync(new SampleRequest { Item = Item(), N = 2, MaxNewTokens = 20, Temperature = 1.5f });
        var replay = await _scorer.SampleAsync(new SampleRequest { Item = Item(), N = 2, MaxNewTokens = 20, Temperature = 1.5f, Seed = unseeded.Seed });
        Assert.Equal(unseeded.Samples.Select(s => s.Scores.TokenIds), replay.Samples.Select(s => s.Scores.TokenIds));
    }

    [Fact]
    public async Task SamplesEnd_AtEos_AtStopStrings_AtMaxNewTokens_AndAtTheContext()
    {
        var info = await _scorer.GetModelInfoAsync(new GetModelInfoRequest());
        int eos = info.EosTokenId;

        var free = await _scorer.SampleAsync(new SampleRequest { Item = Item(), N = 16, Seed = 1 });
        var ended = free.Samples.Where(s => s.FinishReason == FinishReason.Eos).ToList();
        Assert.NotEmpty(ended); // the demo policy learnt to end its reviews
        Assert.All(ended, s => Assert.Equal(eos, s.Scores.TokenIds[^1]));
        Assert.All(ended, s => Assert.Equal(1, s.Scores.TokenIds.Count(t => t == eos)));

        var stopped = await _scorer.SampleAsync(new SampleRequest { Item = Item(), N = 8, Seed = 2, Temperature = 3, Stop = { "e", "zz" } });
        Assert.All(stopped.Samples, s => Assert.Equal(FinishReason.Stop, s.FinishReason));
        Assert.All(stopped.Samples, s => Assert.Contains("e", s.Text));

        var length = await _scorer.SampleAsync(new SampleRequest { Item = Item(), N = 4, Seed = 3, Temperature = 3, MaxNewTokens = 3, TopK = 300 });
        Assert.All(length.Samples, s => Assert.True(s.FinishReason == FinishReason.Length && s.Scores.TokenIds.Count == 3
            || s.FinishReason == FinishReason.Eos));
        Assert.Contains(length.Samples, s => s.FinishReason == FinishReason.Length);

        // A prompt two tokens short of the context: the samples run into its end.
        var longPrompt = new ScoreItem { PromptTokenIds = { Enumerable.Repeat(5, info.MaxContext - 2) } };
        var full = await _scorer.SampleAsync(new SampleRequest { Item = longPrompt, N = 8, Seed = 4, Temperature = 5 });
        Assert.Contains(full.Samples, s => s.FinishReason == FinishReason.Context);
        Assert.All(full.Samples.Where(s => s.FinishReason == FinishReason.Context), s => Assert.Equal(2, s.Scores.TokenIds.Count));
    }

    [Fact]
    public async Task ACancelledSample_StopsDecoding_AndTheMetricCountsWhatWasNotGenerated()
    {
        async Task<double> Metric(string name) => PrometheusText.Parse(await fixture.Server.Http.GetStringAsync("/metrics")).Value(name);
        Task<double> NotGenerated() => Metric("qservice_sample_cancelled_tokens_total");
        double before = await NotGenerated(), sampledBefore = await Metric("qservice_sampled_tokens_total");
        using var cancel = new CancellationTokenSource();
        // Near-uniform tokens: EOS is rare, so without the cancellation these would run to the end of the context.
        var call = _scorer.SampleAsync(new SampleRequest { Item = Item(), N = 8, Seed = 6, Temperature = 50 }, cancellationToken: cancel.Token);
        // Cancelled once decoding has begun (its first step counted), not after a fixed time, which a fast CPU outruns.
        var begun = DateTime.UtcNow.AddSeconds(30);
        while (await Metric("qservice_sampled_tokens_total") <= sampledBefore && DateTime.UtcNow < begun) { }
        Assert.False(call.ResponseAsync.IsCompleted, "the samples ran to their end before the test could cancel them");
        cancel.Cancel();
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await NotGenerated() <= before && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(await NotGenerated() > before, "no tokens were recorded as not generated after the cancellation");
        // The service goes on.
        Assert.Single((await _scorer.SampleAsync(new SampleRequest { Item = Item(), MaxNewTokens = 2 })).Samples);
    }

    /// <summary>
    /// Every bad input is unit-tested on the engine (Engine.Tests: ScoringEngineValidationTests); this one checks the
    /// status over a real socket.
    /// </summary>
    [Fact]
    public async Task BadInput_IsInvalidArgumentNamingTheField()
    {
        // alpha is an optional field: set without GUIDED, it arrives as set.
        var request = new SampleRequest { Item = Item(), MaxNewTokens = 4, Alpha = 2 };
        var error = await Assert.ThrowsAsync<RpcException>(async () => await _scorer.SampleAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("alpha is only used with sample_from GUIDED", error.Status.Detail);
    }
}
