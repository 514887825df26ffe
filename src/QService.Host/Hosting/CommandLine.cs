namespace QService.Host.Hosting;

/// <summary>Short command-line flags for the common settings; any setting also works as --Section:Key=value.</summary>
public static class CommandLine
{
    public static readonly Dictionary<string, string> SwitchMappings = new()
    {
        ["--policy"] = "Models:PolicyPath",
        ["--reference"] = "Models:ReferencePath",
        ["--tokenizer"] = "Models:TokenizerPath",
        ["--device"] = "Models:Device",
        ["--dtype"] = "Models:Dtype",
        ["--threads"] = "Models:Threads",
        ["--beta"] = "Models:Beta",
        ["--grpc-port"] = "Server:GrpcPort",
        ["--http-port"] = "Server:HttpPort",
        ["--http-api-port"] = "Server:HttpApiPort",
        ["--bind"] = "Server:BindAddress",
        ["--log-format"] = "Server:LogFormat",
        ["--max-batch-tokens"] = "Batching:MaxBatchTokens",
        ["--max-queue-delay-ms"] = "Batching:MaxQueueDelayMs",
    };
}
