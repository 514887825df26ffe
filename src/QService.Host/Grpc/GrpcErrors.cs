using Grpc.Core;
using QService.Engine;

namespace QService.Host.Grpc;

/// <summary>Maps engine errors to gRPC statuses; anything unexpected becomes INTERNAL with a log line, never a crash.</summary>
public static class GrpcErrors
{
    public static RpcException ToRpc(Exception e, ILogger logger) => e switch
    {
        RpcException rpc => rpc,
        ScoringException s => new RpcException(new Status(s.Kind switch
        {
            ScoringErrorKind.InvalidArgument => StatusCode.InvalidArgument,
            ScoringErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
            ScoringErrorKind.Unavailable => StatusCode.Unavailable,
            _ => StatusCode.Internal,
        }, s.Message)),
        OperationCanceledException => new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled or its deadline passed")),
        _ => Unexpected(e, logger),
    };

    static RpcException Unexpected(Exception e, ILogger logger)
    {
        logger.LogError(e, "Unexpected error: {Message}", e.Message);
        return new RpcException(new Status(StatusCode.Internal, "internal error; it has been logged"));
    }
}
