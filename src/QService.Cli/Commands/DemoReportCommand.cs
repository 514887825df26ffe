using System.CommandLine;
using QService.Demo;

namespace QService.Cli.Commands;

/// <summary>`qservice demo-report`: regenerates docs/demo.md and its figures from the committed demo pair.</summary>
static class DemoReportCommand
{
    public static Command Create()
    {
        var pair = new Option<string>("--pair") { Description = "folder with reference/ and policy/", DefaultValueFactory = _ => "models/demo" };
        var docs = new Option<string>("--output") { Description = "folder for demo.md and its SVG figures", DefaultValueFactory = _ => "docs" };
        var cmd = new Command("demo-report", "Evaluate the demo pair and write docs/demo.md with its figures.") { pair, docs };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            new DemoReport(r.GetValue(pair)!, r.GetValue(docs)!, Console.Out).Write();
            return 0;
        }));
        return cmd;
    }
}
