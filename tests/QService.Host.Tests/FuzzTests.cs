using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// 100,000 random and broken messages to every RPC of a server of its own: random field values, byte
/// mutations of valid messages, and truncated frames. None may crash it or come back UNKNOWN, and it must
/// score exactly as before afterwards. A failure names the seed that reproduces it.
/// </summary>
public class FuzzTests
{
    const int Seed = 20261127;
    const int RandomMessages = 60_000, Mutations = 38_000, TruncatedFrames = 2_000;
    static readonly string[] Methods = ["Score", "NextTokens", "Sample", "GetModelInfo", "ScoreStream"];

    [Fact]
    public async Task HundredThousandRandomAndBrokenMessages_CauseNoCrashAndNoUnknown()
    {
        await using var server = await ServerProcess.StartServingAsync();
        var scorer = server.Channel.Scorer;
        var probe = new ScoreRequest { Items = { new ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } } };
        var before = (await scorer.ScoreAsync(probe)).Results[0];
        var statuses = new ConcurrentDictionary<StatusCode, int>();
        var unknown = new ConcurrentQueue<string>();
        var invoker = server.Channel.Invoker;

        async Task Send(string method, byte[] message)
        {
            try
            {
                var call = invoker.AsyncUnaryCall(Raw(method), null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30)), message);
                await call.ResponseAsync;
                statuses.AddOrUpdate(StatusCode.OK, 1, (_, n) => n + 1);
            }
            catch (RpcException e)
            {
                statuses.AddOrUpdate(e.StatusCode, 1, (_, n) => n + 1);
                if (e.StatusCode == StatusCode.Unknown && unknown.Count < 5)
                    unknown.Enqueue($"{method}: {e.Status.Detail} ({Convert.ToHexString(message.AsSpan(0, Math.Min(64, message.Length)))})");
            }
        }

        // Random values in every field, and byte mutations of valid messages; 16 calls in flight.
        var options = new ParallelOptions { MaxDegreeOfParallelism = 16 };
        await Parallel.ForEachAsync(Enumerable.Range(0, RandomMessages + Mutations), options, async (i, _) =>
        {
            var random = new Random(Seed + i);
            string method = Methods[random.Next(Methods.Length - 1)]; // ScoreStream is a stream: sent raw below
            byte[] message = RandomMessage(method, random);
            if (i >= RandomMessages) message = Mutate(message, random);
            await Send(method, message);
        });
        // Frames whose length prefix promises more than they carry, and a stream method called as unary.
        using var http = new HttpClient();
        await Parallel.ForEachAsync(Enumerable.Range(0, TruncatedFrames), options, async (i, cancellation) =>
        {
            var random = new Random(Seed - i - 1);
            string method = Methods[random.Next(Methods.Length)];
            byte[] message = RandomMessage(method == "ScoreStream" ? "Score" : method, random);
            var frame = new byte[5 + Math.Max(0, message.Length - 1 - random.Next(Math.Max(1, message.Length)))];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)(message.Length + random.Next(1, 1000)));
            message.AsSpan(0, frame.Length - 5).CopyTo(frame.AsSpan(5));
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{server.GrpcPort}/qservice.v1.QScorer/{method}") 
            {
                Content = new ByteArrayContent(frame), Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            request.Headers.TE.ParseAdd("trailers");
            using var response = await http.SendAsync(request, cancellation);
            await response.Content.ReadAsByteArrayAsync(cancellation);
            string? status = response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First()
                : response.Headers.TryGetValues("grpc-status", out var h) ? h.First() : null;
            var code = status is null ? StatusCode.Unknown : (StatusCode)int.Parse(status);
            statuses.AddOrUpdate(code, 1, (_, n) => n + 1);
            if (code == StatusCode.Unknown && unknown.Count < 5) unknown.Enqueue($"truncated {method}: HTTP {(int)response.StatusCode}");
        });

        string summary = string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key} {s.Value}"));
        Assert.True(unknown.IsEmpty, $"seed {Seed}: UNKNOWN statuses ({summary}): {string.Join(" | ", unknown)}\nserver: "
            + string.Join("\n", server.Output.Split('\n').Where(l => l.Contains("xception")).Take(3).Select(l => l[..Math.Min(1500, l.Length)])));
        Assert.Equal(RandomMessages + Mutations + TruncatedFrames, statuses.Values.Sum());
        Assert.True((await server.Http.GetAsync("/healthz")).IsSuccessStatusCode, $"seed {Seed}: not alive after the fuzz ({summary})");
        var after = (await scorer.ScoreAsync(probe)).Results[0];
        Assert.Equal(before.TokenIds, after.TokenIds);
        Assert.All(before.Credits.Zip(after.Credits), c => Assert.Equal(c.First, c.Second, 1e-5f));
    }

    static Method<byte[], byte[]> Raw(string name) =>
        new(MethodType.Unary, "qservice.v1.QScorer", name, Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));

    static byte[] Mutate(byte[] message, Random random)
    {
        var bytes = message.ToList();
        for (int m = random.Next(1, 6); m > 0; m--)
        {
            int at = bytes.Count == 0 ? 0 : random.Next(bytes.Count);
            switch (random.Next(3))
            {
                case 0 when bytes.Count > 0: bytes[at] = (byte)random.Next(256); break;
                case 1: bytes.Insert(at, (byte)random.Next(256)); break;
                case 2 when bytes.Count > 0: bytes.RemoveAt(at); break;
            }
        }
        return [.. bytes];
    }

    /// <summary>A message of the method's request type with random field values: mostly plausible, often out of range.</summary>
    static byte[] RandomMessage(string method, Random r)
    {
        int Int() => r.Next(8) switch { 0 => -r.Next(1000), 1 => int.MaxValue - r.Next(3), 2 => r.Next(100_000), _ => r.Next(0, 400) };
        float Float() => r.Next(8) switch { 0 => float.NaN, 1 => float.PositiveInfinity, 2 => -r.NextSingle(), 3 => 0,
            4 => r.NextSingle() * 1e6f, _ => r.NextSingle() * 3 };
        string Text() => r.Next(6) switch
        {
            0 => "",
            1 => new string((char)r.Next(32, 127), r.Next(1, 300)),
            2 => string.Concat(Enumerable.Range(0, r.Next(1, 40))
                .Select(_ => char.ConvertFromUtf32(r.Next(0x20, 0x2FFF) is var c && c is >= 0xD800 and <= 0xDFFF ? 0x41 : c))),
            3 => "Review of the phone:",
            4 => " The battery is long. The screen is awful.",
            _ => string.Concat(Enumerable.Range(0, r.Next(1, 20)).Select(_ => "<|endoftext|>  \n\t.".Substring(r.Next(18)))),
        };
        ScoreItem Item()
        {
            var item = new ScoreItem { Id = r.Next(4) == 0 ? Text() : $"{r.Next(100)}", AppendEos = r.Next(5) == 0 };
            if (r.Next(2) == 0) { item.Prompt = Text(); item.Response = Text(); }
            if (r.Next(2) == 0) item.PromptTokenIds.Add(Enumerable.Range(0, r.Next(0, 12)).Select(_ => Int()));
            if (r.Next(2) == 0) item.ResponseTokenIds.Add(Enumerable.Range(0, r.Next(0, 12)).Select(_ => Int()));
            return item;
        }
        IMessage message = method switch
        {
            "Score" => new ScoreRequest
            {
                Items = { Enumerable.Range(0, r.Next(0, 4)).Select(_ => Item()) }, IncludeTokenText = r.Next(2) == 0,
            }.With(m => { if (r.Next(3) == 0) m.Beta = Float(); if (r.Next(4) == 0) m.StepDelimiter = Text(); }),
            "NextTokens" => new NextTokensRequest
            {
                Items = { Enumerable.Range(0, r.Next(0, 3)).Select(_ => Item()) }, TopK = r.Next(3) == 0 ? Int() : r.Next(0, 5),
                CandidateIds = { Enumerable.Range(0, r.Next(0, 3)).Select(_ => Int()) }, RankBy = (RankBy)r.Next(-1, 4),
            }.With(m => { if (r.Next(3) == 0) m.Beta = Float(); }),
            "Sample" => new SampleRequest
            {
                // Valid n and max_new_tokens stay small: the point is the parsing and checks, not long decodes.
                Item = r.Next(8) == 0 ? null : Item(), N = r.Next(4) == 0 ? (r.Next(2) == 0 ? -r.Next(100) : 100_000 + r.Next(100)) : r.Next(-1, 4),
                SampleFrom = (SampleFrom)r.Next(-1, 4), TopK = r.Next(4) == 0 ? Int() : 0,
                MaxNewTokens = r.Next(4) == 0 ? (r.Next(2) == 0 ? -r.Next(100) : 100_000) : r.Next(1, 6),
                Stop = { Enumerable.Range(0, r.Next(0, 3)).Select(_ => Text()) },
            }.With(m =>
            {
                if (r.Next(2) == 0) m.Alpha = Float();
                if (r.Next(2) == 0) m.Temperature = Float();
                if (r.Next(2) == 0) m.TopP = Float();
                if (r.Next(2) == 0) m.Seed = (ulong)r.NextInt64();
                if (r.Next(4) == 0) m.StepDelimiter = Text();
            }),
            _ => new GetModelInfoRequest(),
        };
        return message.ToByteArray();
    }
}

static class MessageExtensions
{
    public static T With<T>(this T message, Action<T> change)
    {
        change(message);
        return message;
    }
}
