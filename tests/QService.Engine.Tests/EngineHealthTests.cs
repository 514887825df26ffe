namespace QService.Engine.Tests;

/// <summary>The health endpoints' rules, one at a time.</summary>
public class EngineHealthTests
{
    [Fact]
    public void Readiness_FollowsLoading_Draining_AndRunsOfFailedPasses()
    {
        Assert.Equal((false, "models are loading"), EngineHealth.Readiness(TaskStatus.Running, null, false, 0, null, 3));
        Assert.Equal((false, "models are loading: the policy: 1.20 of 13.48 GB"),
            EngineHealth.Readiness(TaskStatus.Running, null, false, 0, null, 3, "the policy: 1.20 of 13.48 GB"));
        Assert.Equal((false, "models failed to load: no such file"), EngineHealth.Readiness(TaskStatus.Faulted, "no such file", false, 0, null, 3));
        Assert.True(EngineHealth.Readiness(TaskStatus.RanToCompletion, null, false, 2, "error", 3).Ready);
        var failing = EngineHealth.Readiness(TaskStatus.RanToCompletion, null, false, 3, "out_of_memory", 3);
        Assert.False(failing.Ready);
        Assert.Contains("3 forward passes failed in a row (last: out_of_memory)", failing.Reason);
        var draining = EngineHealth.Readiness(TaskStatus.RanToCompletion, null, true, 0, null, 3);
        Assert.Equal((false, "shutting down: finishing accepted work, taking no new work"), draining);
    }

    [Fact]
    public void LoadProgress_SaysWhichModelAndHowFar()
    {
        var progress = new LoadProgress(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        string status = progress.Report("policy", 1_200_000_000, 13_480_000_000);
        Assert.StartsWith("the policy: 1.20 of 13.48 GB (", status);
        Assert.EndsWith(" MB/s)", status);
        Assert.StartsWith("the reference: 13.48 of 13.48 GB", progress.Report("reference", 13_480_000_000, 13_480_000_000));
    }

    [Fact]
    public void Liveness_FailsOnlyWhenAPassRunsPastTheBound()
    {
        Assert.True(EngineHealth.Liveness(null, 300).Alive);
        Assert.True(EngineHealth.Liveness(TimeSpan.FromSeconds(299), 300).Alive);
        var hung = EngineHealth.Liveness(TimeSpan.FromSeconds(301), 300);
        Assert.False(hung.Alive);
        Assert.Contains("running for 301 s, more than Batching:MaxPassSeconds=300", hung.Reason);
    }
}
