using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Grpc.Core;
using QService.Client;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice soak`: saturation traffic (Score, NextTokens and Sample on random tokens) against a running
/// server for a while, with the server's resident memory, managed heap and live tensors (from its /metrics),
/// errors and throughput reported over time: what a leak or a slow degradation would show. Traffic pauses
/// at the end of the warm-up and stops at the end until the server is idle, so that the live tensors are
/// compared at rest (exactly); resident memory is judged by its plateau: how much it still grows in the
/// second half of the measured time, after the allocator has settled.
/// </summary>
static class SoakCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "gRPC address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var metrics = new Option<string>("--metrics") { Description = "the server's management address", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var minutes = new Option<double>("--minutes") { Description = "how long to run", DefaultValueFactory = _ => 30 };
        var warmup = new Option<double>("--warmup-seconds") { Description = "memory growth is measured from the end of this", DefaultValueFactory = _ => 20 };
        var every = new Option<double>("--every-seconds") { Description = "report interval", DefaultValueFactory = _ => 10 };
        var callers = new Option<int>("--callers") { Description = "concurrent callers", DefaultValueFactory = _ => 8 };
        var json = new Option<bool>("--json") { Description = "print one JSON object at the end instead of the table" };
        var cmd = new Command("soak", "Drive saturation traffic for a while and report memory, live tensors, errors and throughput over time.")
            { server, metrics, minutes, warmup, every, callers, json };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(metrics)!, r.GetValue(minutes), r.GetValue(warmup),
            r.GetValue(every), r.GetValue(callers), r.GetValue(json)).GetAwaiter().GetResult()));
        return cmd;
    }

    sealed record Sample(double Seconds, double ResidentMb, double HeapMb, double LiveTensors, long Errors, double TokensPerSecond);

    static async Task<int> Execute(string address, string metricsAddress, double minutes, double warmupSeconds, double everySeconds, int callers, bool json)
    {
        using var channel = new QServiceChannel(address);
        using var http = new HttpClient { BaseAddress = new Uri(metricsAddress) };
        var info = await channel.Scorer.GetModelInfoAsync(new GetModelInfoRequest());
        var duration = TimeSpan.FromMinutes(minutes);
        using var stop = new CancellationTokenSource(duration);
        long tokens = 0, errors = 0, inFlight = 0;
        using var running = new ManualResetEventSlim(true); // reset while traffic pauses
        var firstErrors = new List<string>();
        var clock = Stopwatch.StartNew();

        async Task Caller(int id)
        {
            var random = new Random(id);
            int[] Ids(int n) => [.. Enumerable.Range(0, n).Select(_ => random.Next(3, info.VocabSize))];
            while (!stop.IsCancellationRequested)
            {
                try { running.Wait(stop.Token); } catch (OperationCanceledException) { break; }
                Interlocked.Increment(ref inFlight);
                try
                {
                    int kind = random.Next(3);
                    if (kind == 0)
                    {
                        var request = new ScoreRequest();
                        for (int i = 0; i < 4; i++) request.Items.Add(new ScoreItem { PromptTokenIds = { Ids(24) }, ResponseTokenIds = { Ids(24) } });
                        await channel.Scorer.ScoreAsync(request, cancellationToken: stop.Token);
                        Interlocked.Add(ref tokens, 4 * 48);
                    }
                    else if (kind == 1)
                    {
                        await channel.Scorer.NextTokensAsync(new NextTokensRequest { Items = { new ScoreItem { PromptTokenIds = { Ids(32) } } }, TopK = 5 },
                            cancellationToken: stop.Token);
                        Interlocked.Add(ref tokens, 32);
                    }
                    else
                    {
                        var reply = await channel.Scorer.SampleAsync(
                            new SampleRequest { Item = new ScoreItem { PromptTokenIds = { Ids(16) } }, N = 2, MaxNewTokens = 16 },
                            cancellationToken: stop.Token);
                        Interlocked.Add(ref tokens, 16 + reply.Samples.Sum(s => s.Scores.TokenIds.Count));
                    }
                }
                catch (RpcException) when (stop.IsCancellationRequested) { }
                catch (RpcException e)
                {
                    Interlocked.Increment(ref errors);
                    lock (firstErrors) if (firstErrors.Count < 5) firstErrors.Add($"{e.StatusCode}: {e.Status.Detail}");
                }
                finally { Interlocked.Decrement(ref inFlight); }
            }
        }

        // The live tensors once no call is in flight and the server has finished its last pass.
        async Task<double> LiveTensorsAtRest()
        {
            while (Interlocked.Read(ref inFlight) > 0) await Task.Delay(50);
            double last = -1;
            for (int i = 0; i < 100; i++) // until two scrapes agree: the gauge is read after the model thread's last pass
            {
                await Task.Delay(200);
                double now = MetricsText.Parse(await http.GetStringAsync("/metrics")).GetValueOrDefault("qservice_live_tensors");
                if (now == last) return now;
                last = now;
            }
            return last;
        }

        var load = Enumerable.Range(0, callers).Select(Caller).ToList();
        var samples = new List<Sample>();
        double? tensorsAfterWarmup = null;
        long lastTokens = 0;
        double lastSeconds = 0;
        if (!json) Console.WriteLine($"{"s",6} {"RSS MB",8} {"heap MB",8} {"tensors",8} {"errors",7} {"tokens/s",9}");
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(TimeSpan.FromSeconds(everySeconds), stop.Token); } catch (OperationCanceledException) { }
            if (tensorsAfterWarmup is null && clock.Elapsed.TotalSeconds >= warmupSeconds && !stop.IsCancellationRequested)
            {
                running.Reset();
                tensorsAfterWarmup = await LiveTensorsAtRest();
                running.Set();
            }
            var scraped = MetricsText.Parse(await http.GetStringAsync("/metrics"));
            double seconds = clock.Elapsed.TotalSeconds;
            long now = Interlocked.Read(ref tokens);
            var sample = new Sample(seconds, scraped.GetValueOrDefault("qservice_resident_memory_bytes") / 1048576,
                scraped.GetValueOrDefault("qservice_managed_heap_bytes") / 1048576,
                scraped.GetValueOrDefault("qservice_live_tensors"), Interlocked.Read(ref errors), (now - lastTokens) / (seconds - lastSeconds));
            (lastTokens, lastSeconds) = (now, seconds);
            samples.Add(sample);
            if (!json) Console.WriteLine($"{sample.Seconds,6:F0} {sample.ResidentMb,8:F1} {sample.HeapMb,8:F1} {sample.LiveTensors,8:F0} {sample.Errors,7} " +
                $"{sample.TokensPerSecond,9:F1}");
        }
        await Task.WhenAll(load);
        double tensorsAtEnd = await LiveTensorsAtRest();

        var measured = samples.Where(s => s.Seconds >= warmupSeconds).ToList();
        if (measured.Count < 2) measured = samples;
        var afterWarmup = measured[0];
        var last = samples[^1];
        double growth = (last.ResidentMb - afterWarmup.ResidentMb) / afterWarmup.ResidentMb;
        // A leak grows as much in the second half as in the first; an allocator settling grows early, then stops.
        var middle = measured[measured.Count / 2];
        double lateGrowth = (last.ResidentMb - middle.ResidentMb) / afterWarmup.ResidentMb;
        var summary = new
        {
            seconds = last.Seconds, errors = last.Errors, first_errors = firstErrors,
            resident_mb_after_warmup = afterWarmup.ResidentMb, resident_mb_at_end = last.ResidentMb, resident_growth = growth,
            resident_mb_at_middle = middle.ResidentMb, resident_late_growth = lateGrowth,
            live_tensors_after_warmup = tensorsAfterWarmup ?? afterWarmup.LiveTensors, live_tensors_at_end = tensorsAtEnd,
            tokens_per_second = tokens / last.Seconds, samples,
        };
        if (json) Console.WriteLine(JsonSerializer.Serialize(summary, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
        else
        {
            Console.WriteLine($"resident memory {afterWarmup.ResidentMb:F1} MB after {warmupSeconds:F0} s of warm-up -> "
                + $"{middle.ResidentMb:F1} MB at {middle.Seconds:F0} s -> "
                + $"{last.ResidentMb:F1} MB at the end ({100 * growth:+0.0;-0.0} % in all, {100 * lateGrowth:+0.0;-0.0} % in the second half); "
                + $"live tensors at rest {tensorsAfterWarmup ?? afterWarmup.LiveTensors:F0} -> {tensorsAtEnd:F0}; {last.Errors} errors; "
                + $"{tokens / last.Seconds:F1} tokens/s");
            foreach (var e in firstErrors) Console.WriteLine($"  error: {e}");
        }
        return 0;
    }
}
