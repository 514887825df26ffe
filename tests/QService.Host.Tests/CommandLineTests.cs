namespace QService.Host.Tests;

/// <summary>--policy NAME=DIR, repeated, names several policies; several must all be named, and bad names stop the start-up.</summary>
public class CommandLineTests
{
    static async Task<string> ExitOutput(params string[] args)
    {
        await using var server = ServerProcess.Start(args);
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)), "the server should refuse to start");
        Assert.Equal(1, server.ExitCode);
        return server.Output;
    }

    [Fact]
    public async Task SeveralPlainPolicies_StopTheStartUp_AskingForNames()
    {
        string output = await ExitOutput("--policy", PairServer.PolicyPath, "--policy", PairServer.ReferencePath);
        Assert.Contains("--policy is given 2 times, 2 of them without a name; serve one policy with --policy DIR, or several with --policy NAME=DIR", output);
    }

    [Fact]
    public async Task ARepeatedPolicyName_StopsTheStartUp_NamingTheSetting()
    {
        string output = await ExitOutput("--policy", $"dpo={PairServer.PolicyPath}", "--policy", $"dpo={PairServer.ReferencePath}",
            "--reference", PairServer.ReferencePath);
        Assert.Contains("Models:Policies:1:Name 'dpo' is given twice; name each policy once", output);
    }
}
