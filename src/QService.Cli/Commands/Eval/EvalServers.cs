using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands.Eval;

/// <summary>Checks before a run: the servers serve one pair (else results would depend on which answered), and EOS can be scored.</summary>
static class EvalServers
{
    public static async Task CheckAsync(IReadOnlyList<QServiceChannel> channels, IReadOnlyList<string> addresses, bool appendEos,
        CancellationToken cancellation)
    {
        var infos = new List<ModelInfo>();
        foreach (var channel in channels)
            infos.Add(await channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest(), deadline: DateTime.UtcNow.AddMinutes(1),
                cancellationToken: cancellation));
        static string Pair(ModelInfo i) => $"{i.PolicyModel} / {i.ReferenceModel}, vocabulary {i.VocabSize}, beta {i.Beta}";
        for (int s = 1; s < infos.Count; s++)
            if (Pair(infos[s]) != Pair(infos[0]))
                throw new InvalidOperationException($"--server: {addresses[s]} serves {Pair(infos[s])}, but {addresses[0]} serves {Pair(infos[0])}");
        if (appendEos && !infos[0].HasEosTokenId)
            throw new ArgumentException($"the model served at {addresses[0]} defines no end-of-sequence token: pass --no-eos to score responses as they are");
    }
}
