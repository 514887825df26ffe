using System.CommandLine;
using Grpc.Core;
using QService.Client;
using QService.Client.Rendering;
using QService.Protos.V1;

namespace QService.Cli.Commands;

/// <summary>
/// `qservice score`: asks a running server for per-token credits and prints them as heatmaps (and a table); under one named
/// policy, or under several side by side.
/// </summary>
static class ScoreCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "server address", DefaultValueFactory = _ => "http://127.0.0.1:50051" };
        var prompt = new Option<string>("--prompt") { Description = "the prompt", Required = true };
        var responses = new Option<string[]>("--response")
            { Description = "a response to score (repeat for several)", Required = true, AllowMultipleArgumentsPerToken = false };
        var beta = new Option<float?>("--beta") { Description = "override the server's beta" };
        var eos = new Option<bool>("--eos") { Description = "score the end-of-sequence token too (a finished response)" };
        var json = new Option<bool>("--json") { Description = "print the raw response as JSON" };
        var html = new Option<string?>("--html") { Description = "also write a self-contained HTML page (token heatmaps and Q plots) to this file" };
        var table = new Option<bool>("--table") { Description = "also print the per-token table (log-probabilities, credit, Q)" };
        // Repeated like the server's own --policy and mapped onto ScoreRequest.policies: one is the plain case, several a comparison.
        var policies = new Option<string[]>("--policy")
        {
            Description = "score under this served policy (default: the server's first); repeat it (--policy A --policy B) to show " +
                "each response under each policy side by side: every token's credit and the reward under each",
            AllowMultipleArgumentsPerToken = false,
        };
        var cmd = new Command("score", "Score responses to a prompt on a running QService: tokens coloured by credit, Q as a sparkline; " +
            "with --policy A --policy B, two served policies side by side.")
            { server, prompt, responses, policies, beta, eos, json, html, table };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(server)!, r.GetValue(prompt)!, r.GetValue(responses)!, r.GetValue(policies) ?? [],
            r.GetValue(beta), r.GetValue(eos), r.GetValue(json), r.GetValue(html), r.GetValue(table))));
        return cmd;
    }

    static int Execute(string address, string prompt, string[] responses, string[] policies, float? beta, bool eos, bool json, string? htmlFile,
        bool table)
    {
        using var channel = new QServiceChannel(address);
        var request = new ScoreRequest { IncludeTokenText = true, Policies = { policies } };
        if (beta is float b) request.Beta = b;
        for (int i = 0; i < responses.Length; i++)
            request.Items.Add(new ScoreItem { Id = $"response {i + 1}", Prompt = prompt, Response = responses[i], AppendEos = eos });
        ScoreResponse reply;
        try { reply = channel.Scorer.Score(request, deadline: DateTime.UtcNow.AddMinutes(2)); }
        catch (RpcException e)
        {
            Console.Error.WriteLine($"error: {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
        if (json)
        {
            Console.WriteLine(Google.Protobuf.JsonFormatter.Default.Format(reply));
            return 0;
        }
        var names = reply.PolicyNames();
        Console.WriteLine($"{(names.Count > 1 ? "policies" : "policy")} {string.Join(", ", names)} vs reference {reply.ReferenceModel}, beta {reply.Beta}");
        Console.WriteLine($"prompt: {Display.Quote(prompt)}");
        if (policies.Length > 1) PolicyComparisonDisplay.Print(reply.ByItem(policies.Length), table);
        else
            Display.Heatmaps(reply.Results, item => $"{item.Id}: reward {Signed.Format(item.Reward)} over {item.TokenIds.Count} tokens",
                table ? ScoreTable.Print : null);
        if (htmlFile != null)
        {
            File.WriteAllText(htmlFile, CreditHtmlPage.Render(prompt, reply, Math.Max(1, policies.Length)));
            Console.WriteLine($"wrote {htmlFile}");
        }
        return 0;
    }
}

/// <summary>The per-token table: token, both log-probabilities, the credit and the running Q.</summary>
static class ScoreTable
{
    public static void Print(ScoredItem item)
    {
        Console.WriteLine($"  {"#",3}  {"token",-18} {"log pi",9} {"log pi_ref",10} {"credit",9} {"Q",9}");
        for (int t = 0; t < item.TokenIds.Count; t++)
        {
            string token = t < item.TokenTexts.Count ? Display.Quote(item.TokenTexts[t]) : item.TokenIds[t].ToString();
            Console.WriteLine($"  {t,3}  {Display.Truncate(token, 18),-18} {item.PolicyLogprobs[t],9:F4} {item.ReferenceLogprobs[t],10:F4} " +
                $"{Signed.Format(item.Credits[t]),9} {Signed.Format(item.QValues[t]),9}");
        }
    }
}
