using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Grpc.Core;
using QService.Protos.V1;

namespace QService.Client.Evaluation;

/// <summary>
/// Scores preference pairs on one or more servers and yields the results in input order. Pairs go out in requests of
/// <see cref="EvaluationOptions.PairsPerRequest"/> (chosen and rejected side by side, so each server's prefix cache
/// computes a prompt once); each server keeps <see cref="EvaluationOptions.RequestsPerServer"/> requests in flight and takes
/// the next batch when one returns, so a faster server takes more. The order of the results is the order of the rows,
/// whatever server answers first, and the numbers do not depend on which server scored a pair (the servers must serve the
/// same pair). A request the server rejects as bad input is retried pair by pair, so one bad row (e.g. over the context)
/// becomes that row's error and no other's.
/// </summary>
public sealed class PreferenceEvaluator(IReadOnlyList<QServiceChannel> servers, EvaluationOptions? options = null)
{
    readonly EvaluationOptions _options = options ?? new EvaluationOptions();

    public async IAsyncEnumerable<PairResult> EvaluateAsync(IAsyncEnumerable<PreferenceRow> rows,
        [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        if (servers.Count == 0) throw new ArgumentException("no server to evaluate on");
        int workers = servers.Count * Math.Max(1, _options.RequestsPerServer);
        // At most this many batches between reading and yielding: memory stays bounded whatever the file's size.
        var window = new SemaphoreSlim(workers * 2);
        var queue = Channel.CreateUnbounded<(long Seq, PreferenceRow[] Rows)>();
        var done = new Dictionary<long, TaskCompletionSource<PairResult[]>>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        Exception? failure = null;
        TaskCompletionSource<PairResult[]> Slot(long seq)
        {
            lock (done)
            {
                if (done.TryGetValue(seq, out var slot)) return slot;
                slot = done[seq] = new(TaskCreationOptions.RunContinuationsAsynchronously);
                if (failure != null) slot.TrySetException(failure);
                return slot;
            }
        }
        void Fail(Exception e)
        {
            lock (done) { failure ??= e; foreach (var t in done.Values) t.TrySetException(failure); }
            stop.Cancel();
        }
        var producer = Task.Run(async () =>
        {
            try
            {
                long seq = 0;
                await foreach (var batch in Batches(rows, stop.Token))
                {
                    await window.WaitAsync(stop.Token);
                    Slot(seq);
                    await queue.Writer.WriteAsync((seq++, batch), stop.Token);
                }
                queue.Writer.Complete();
                Slot(seq).TrySetResult([]); // the end marker: an empty batch
            }
            catch (Exception e) { queue.Writer.TryComplete(e); Fail(e); }
        }, stop.Token);
        var consumers = Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var channel = servers[w % servers.Count];
            try
            {
                await foreach (var (seq, batch) in queue.Reader.ReadAllAsync(stop.Token))
                    Slot(seq).TrySetResult(await ScoreBatchAsync(channel, batch, stop.Token));
            }
            catch (Exception e) { Fail(e); }
        }, stop.Token)).ToArray();
        try
        {
            for (long seq = 0; ; seq++)
            {
                var results = await Slot(seq).Task.WaitAsync(cancellation);
                lock (done) done.Remove(seq);
                if (results.Length == 0) break;
                window.Release();
                foreach (var r in results) yield return r;
            }
        }
        finally
        {
            stop.Cancel();
            try { await Task.WhenAll([producer, .. consumers]); } catch (Exception) { /* the cause surfaced from the slot, or it was a cancel */ }
        }
    }

    /// <summary>
    /// Requests of the rows [k·P, (k+1)·P) by row index (P = PairsPerRequest; bad rows leave a request smaller), so that a
    /// resumed run, which starts at a multiple of P when it resumes a run of this P, sends the same requests as an unbroken one.
    /// </summary>
    async IAsyncEnumerable<PreferenceRow[]> Batches(IAsyncEnumerable<PreferenceRow> rows, [EnumeratorCancellation] CancellationToken cancellation)
    {
        var batch = new List<PreferenceRow>();
        await foreach (var row in rows.WithCancellation(cancellation))
        {
            batch.Add(row);
            if ((row.Index + 1) % _options.PairsPerRequest == 0)
            {
                yield return [.. batch];
                batch.Clear();
            }
        }
        if (batch.Count > 0) yield return [.. batch];
    }

    async Task<PairResult[]> ScoreBatchAsync(QServiceChannel channel, PreferenceRow[] batch, CancellationToken cancellation)
    {
        var good = batch.Where(r => !r.IsBad).ToArray();
        var scored = new Dictionary<long, PairResult>();
        if (good.Length > 0)
        {
            try { foreach (var r in await ScorePairsAsync(channel, good, cancellation)) scored[r.Index] = r; }
            catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument && good.Length > 1)
            {
                // One bad pair fails the whole request: score them one at a time to find it.
                foreach (var row in good)
                    scored[row.Index] = await ScoreAloneAsync(channel, row, cancellation);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument)
            {
                scored[good[0].Index] = BadResult(good[0], e);
            }
        }
        return batch.Select(r => r.IsBad ? new PairResult(r.Index, r.Subset, r.Error) : scored[r.Index]).ToArray();
    }

    async Task<PairResult> ScoreAloneAsync(QServiceChannel channel, PreferenceRow row, CancellationToken cancellation)
    {
        try { return (await ScorePairsAsync(channel, [row], cancellation))[0]; }
        catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument) { return BadResult(row, e); }
    }

    static PairResult BadResult(PreferenceRow row, RpcException e)
    {
        // Every conversational row fails alike until the server renders chat templates: stop with the server's reason.
        if (e.Status.Detail.Contains("chat template", StringComparison.OrdinalIgnoreCase))
            throw new EvaluationException($"row {row.Index} is a conversation (a list of messages), and the server cannot render it: {e.Status.Detail}", e);
        return new PairResult(row.Index, row.Subset, $"rejected by the server: {e.Status.Detail}");
    }

    async Task<PairResult[]> ScorePairsAsync(QServiceChannel channel, PreferenceRow[] rows, CancellationToken cancellation)
    {
        var request = new ScoreRequest { Reproducible = _options.Reproducible };
        if (_options.Beta is float beta) request.Beta = beta;
        if (_options.StepDelimiter != null) request.StepDelimiter = _options.StepDelimiter;
        foreach (var row in rows)
        {
            var chosen = row.Chosen!.Clone();
            var rejected = row.Rejected!.Clone();
            if (_options.Policy != null) chosen.Policy = rejected.Policy = _options.Policy;
            request.Items.Add(chosen);
            request.Items.Add(rejected);
        }
        var reply = await CallAsync(channel, request, cancellation);
        return rows.Select((row, i) => Result(row, reply.Results[2 * i], reply.Results[2 * i + 1])).ToArray();
    }

    /// <summary>The Score call, retried with back-off while the server is busy (a full queue) or briefly away.</summary>
    static async Task<ScoreResponse> CallAsync(QServiceChannel channel, ScoreRequest request, CancellationToken cancellation)
    {
        for (int attempt = 0; ; attempt++)
        {
            try { return await channel.Scorer.ScoreAsync(request, deadline: DateTime.UtcNow.AddMinutes(10), cancellationToken: cancellation); }
            catch (RpcException e) when (attempt < 6 && e.StatusCode is StatusCode.ResourceExhausted or StatusCode.Unavailable
                && !cancellation.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt), cancellation);
            }
        }
    }

    PairResult Result(PreferenceRow row, ScoredItem chosen, ScoredItem rejected) => new(row.Index, row.Subset, null,
        chosen.Reward, rejected.Reward, chosen.TokenIds.Count, rejected.TokenIds.Count, chosen.PromptTokens,
        _options.StepDelimiter != null ? [.. chosen.StepRewards] : null, _options.StepDelimiter != null ? [.. rejected.StepRewards] : null,
        _options.IncludeCredits ? [.. chosen.Credits] : null, _options.IncludeCredits ? [.. rejected.Credits] : null, row);
}
