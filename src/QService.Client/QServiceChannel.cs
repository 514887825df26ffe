using Grpc.Health.V1;
using Grpc.Net.Client;
using QService.Protos.V1;

namespace QService.Client;

/// <summary>A connection to a QService server: the scorer and the standard health client over one HTTP/2 channel.</summary>
public sealed class QServiceChannel : IDisposable
{
    readonly GrpcChannel _channel;

    public QScorer.QScorerClient Scorer { get; }
    public Health.HealthClient Health { get; }

    /// <summary>The channel's call invoker, for calls the generated clients do not make (raw bytes, other services).</summary>
    public Grpc.Core.CallInvoker Invoker => _channel.CreateCallInvoker();

    /// <param name="address">e.g. http://127.0.0.1:50051 (plain-text HTTP/2)</param>
    public QServiceChannel(string address)
    {
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 64 * 1024 * 1024,
            // One connection multiplexes every concurrent call; allow more than the default 100 streams' worth.
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        });
        Scorer = new QScorer.QScorerClient(_channel);
        Health = new Health.HealthClient(_channel);
    }

    /// <summary>Polls the health service until the scorer reports SERVING or the timeout passes.</summary>
    public async Task<bool> WaitUntilServingAsync(TimeSpan timeout, CancellationToken cancellation = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var reply = await Health.CheckAsync(new HealthCheckRequest { Service = "qservice.v1.QScorer" }, cancellationToken: cancellation);
                if (reply.Status == HealthCheckResponse.Types.ServingStatus.Serving) return true;
            }
            catch (Grpc.Core.RpcException) { /* not listening yet */ }
            await Task.Delay(200, cancellation);
        }
        return false;
    }

    public void Dispose() => _channel.Dispose();
}
