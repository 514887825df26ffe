using QService.Engine;

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

    /// <summary>
    /// The arguments with every <c>--policy NAME=DIR</c> (or <c>--policy=NAME=DIR</c>) turned into the settings of
    /// Models:Policies, in order; a plain <c>--policy DIR</c> stays Models:PolicyPath. Several policies must all be named.
    /// </summary>
    public static string[] Expand(string[] args)
    {
        var result = new List<string>();
        var named = new List<(string Name, string Path)>();
        int plain = 0;
        for (int i = 0; i < args.Length; i++)
        {
            string? value = args[i] == "--policy" && i + 1 < args.Length ? args[++i]
                : args[i].StartsWith("--policy=", StringComparison.Ordinal) ? args[i]["--policy=".Length..] : null;
            if (value is null) result.Add(args[i]);
            else if (Named(value) is { } policy) named.Add(policy);
            else
            {
                plain++;
                result.AddRange(["--policy", value]);
            }
        }
        if (plain > 1 || plain == 1 && named.Count > 0)
            throw new ConfigurationException($"--policy is given {plain + named.Count} times, {plain} of them without a name; " +
                "serve one policy with --policy DIR, or several with --policy NAME=DIR for each");
        for (int p = 0; p < named.Count; p++)
            result.AddRange([$"--Models:Policies:{p}:Name={named[p].Name}", $"--Models:Policies:{p}:Path={named[p].Path}"]);
        return [.. result];
    }

    /// <summary>NAME=DIR when what precedes the first '=' is a policy name and the whole value is not itself an existing path.</summary>
    static (string Name, string Path)? Named(string value)
    {
        int eq = value.IndexOf('=');
        if (eq <= 0 || Directory.Exists(value)) return null;
        string name = value[..eq];
        return OptionsProblems.ValidPolicyName(name) ? (name, value[(eq + 1)..]) : null;
    }
}
