namespace QService.Client.Decoding;

/// <summary>One continuation from the source: plain sampling (policy or reference), or guided sampling when the source samples with alpha.</summary>
public sealed class SingleSample(IContinuationSource source, int maxTokens, string name = "sample") : IDecodingStrategy
{
    public string Name => name;

    public async Task<DecodeResult> DecodeAsync(string prompt, ulong seed, CancellationToken cancellation = default)
    {
        var batch = await source.ContinueAsync(prompt, [], 1, maxTokens, seed, cancellation);
        var c = batch.Continuations[0];
        return new DecodeResult(Name, c.TokenIds, c.Text, c.Credits, c.Reward, batch.ForwardTokens, [], []);
    }
}

/// <summary>Best-of-N: n whole responses, keep the one with the highest reward (the first of equals).</summary>
public sealed class BestOfN(IContinuationSource source, int n, int maxTokens) : IDecodingStrategy
{
    public string Name => $"bon-{n}";

    public async Task<DecodeResult> DecodeAsync(string prompt, ulong seed, CancellationToken cancellation = default)
    {
        var batch = await source.ContinueAsync(prompt, [], n, maxTokens, seed, cancellation);
        var all = batch.Continuations;
        int best = Enumerable.Range(0, all.Count).MaxBy(i => (all[i].Reward, -i));
        var chosen = all[best];
        var rejected = all.Where((_, i) => i != best).Select(c => new Candidate(c.TokenIds, c.Text, c.Credits, c.Reward, c.Ended)).ToList();
        return new DecodeResult(Name, chosen.TokenIds, chosen.Text, chosen.Credits, chosen.Reward, batch.ForwardTokens, rejected, []);
    }
}

/// <summary>
/// Chunk-level beam search ("weak-to-strong search"): <paramref name="width"/> beams, each expanded by
/// <paramref name="expansions"/> continuations of up to <paramref name="chunkTokens"/> tokens (or up to the
/// source's stop string); the top <paramref name="width"/> partial responses by Q go on, ended ones compete
/// as they are, until every kept beam has ended or reached <paramref name="maxTokens"/>.
/// </summary>
public sealed class ChunkBeamSearch(IContinuationSource source, int width, int expansions, int chunkTokens, int maxTokens) : IDecodingStrategy
{
    public string Name => $"beam-w{width}-k{expansions}-l{chunkTokens}";

    public async Task<DecodeResult> DecodeAsync(string prompt, ulong seed, CancellationToken cancellation = default)
    {
        var beams = new List<Candidate> { new([], "", [], 0, false) };
        var rounds = new List<BeamRound>();
        long forward = 0;
        for (int round = 0; beams.Any(b => !b.Ended); round++)
        {
            // Every open beam expands at once: the service decodes their continuations together.
            int r = round;
            var expanded = await Task.WhenAll(beams.Select(async (beam, b) =>
            {
                if (beam.Ended) return (beam, null);
                int room = Math.Min(chunkTokens, maxTokens - beam.TokenIds.Length);
                ulong chunkSeed = unchecked(seed * 1_000_003UL + (ulong)(r * 1009 + b));
                return (beam, (ContinuationBatch?)await source.ContinueAsync(prompt, beam.TokenIds, expansions, room, chunkSeed, cancellation));
            }));
            var candidates = new List<Candidate>();
            foreach (var (beam, batch) in expanded)
            {
                if (batch is null) { candidates.Add(beam); continue; }
                forward += batch.ForwardTokens;
                foreach (var c in batch.Continuations)
                {
                    int[] tokens = [.. beam.TokenIds, .. c.TokenIds];
                    candidates.Add(new Candidate(tokens, beam.Text + c.Text, [.. beam.Credits, .. c.Credits], beam.Q + c.Reward,
                        c.Ended || tokens.Length >= maxTokens));
                }
            }
            var kept = Enumerable.Range(0, candidates.Count).OrderByDescending(i => candidates[i].Q).ThenBy(i => i).Take(width).ToList();
            rounds.Add(new BeamRound(candidates, kept));
            beams = [.. kept.Select(i => candidates[i])];
        }
        var winner = beams[0];
        return new DecodeResult(Name, winner.TokenIds, winner.Text, winner.Credits, winner.Q, forward, beams.Skip(1).ToList(), rounds);
    }
}
