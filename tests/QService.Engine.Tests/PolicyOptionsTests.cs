namespace QService.Engine.Tests;

/// <summary>Models:Policies problems, each naming the setting.</summary>
public class PolicyOptionsTests
{
    [Fact]
    public void BadPolicyOptions_AreProblemsNamingTheSetting()
    {
        var options = new ModelOptions
        {
            PolicyPath = "/a",
            Policies = [new() { Name = "ok", Path = "/b" }, new() { Name = "ok", Path = "/c" }, new() { Name = "bad name", Path = "" }],
        };
        var problems = OptionsProblems.Of(options).ToList();
        Assert.Equal(4, problems.Count);
        Assert.StartsWith("Models:PolicyPath and Models:Policies are both set", problems[0]);
        Assert.StartsWith("Models:Policies:1:Name 'ok' is given twice", problems[1]);
        Assert.StartsWith("Models:Policies:2:Name is 'bad name'", problems[2]);
        Assert.StartsWith("Models:Policies:2:Path is empty", problems[3]);
    }

    [Theory]
    [InlineData("dpo-epoch2.beta_0.1", true)]
    [InlineData("", false)]
    [InlineData("a/b", false)]
    [InlineData("x y", false)]
    public void PolicyNames_AreLettersDigitsDotsUnderscoresAndDashes(string name, bool valid) => Assert.Equal(valid, OptionsProblems.ValidPolicyName(name));
}
