using System.CommandLine;
using System.Text.Json;
using QService.Runtime.Scoring;
using QService.Runtime.Tokenization;

namespace QService.Cli.Commands;

/// <summary>`qservice logprobs`: log p(token t | tokens 0..t-1) for every position t >= 1.</summary>
static class LogprobsCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
            { Description = "HuggingFace model folder (config.json, *.safetensors, tokenizer.json for --text)", Required = true };
        var ids = new Option<string?>("--ids") { Description = "comma-separated token ids, e.g. 1,2,3" };
        var text = new Option<string?>("--text") { Description = "text to tokenize (with the tokenizer's BOS rule) and score" };
        var json = new Option<bool>("--json") { Description = "print one JSON object {\"token_ids\":[...],\"logprobs\":[...]}" };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
        var dtype = new Option<string>("--dtype") { Description = "compute dtype: float32, bfloat16 or float16", DefaultValueFactory = _ => "float32" };
        var cmd = new Command("logprobs", "Print the log-probability of each token given the ones before it.") { model, ids, text, json, device, dtype };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(model)!, r.GetValue(ids), r.GetValue(text), r.GetValue(json),
            r.GetValue(device)!, r.GetValue(dtype)!)));
        return cmd;
    }

    static int Execute(string modelDir, string? idsText, string? text, bool json, string device, string dtype)
    {
        if ((idsText is null) == (text is null)) throw new ArgumentException("give exactly one of --ids or --text");
        HfTokenizer? tokenizer = File.Exists(Path.Combine(modelDir, "tokenizer.json")) ? HfTokenizer.Load(modelDir) : null;
        int[] tokenIds;
        if (text is not null)
        {
            if (tokenizer is null) throw new ArgumentException($"--text needs {Path.Combine(modelDir, "tokenizer.json")}; use --ids instead");
            tokenIds = tokenizer.Encode(text, addSpecialTokens: true).Ids;
        }
        else tokenIds = CliErrors.ParseIds(idsText!);
        if (tokenIds.Length == 0) throw new ArgumentException("no tokens to score");

        using var lm = CausalLanguageModel.Load(modelDir, new ModelLoadOptions(device, dtype));
        float[] logprobs = lm.ScoreNextTokens([tokenIds])[0].Logprobs;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object> { ["token_ids"] = tokenIds, ["logprobs"] = logprobs }));
            return 0;
        }
        Console.WriteLine($"{lm.Config.Architecture} from {modelDir} ({lm.ParameterCount:N0} parameters, {lm.Device.type}, {dtype})");
        Console.WriteLine($"{"pos",5}  {"id",7}  {"token",-24}  {"logprob",10}");
        for (int t = 0; t < tokenIds.Length; t++)
        {
            string tok = tokenizer?.TokenSurface(tokenIds[t]) ?? "";
            string shown = Display.Quote(tok);
            string lp = t == 0 ? "—" : logprobs[t - 1].ToString("F4");
            Console.WriteLine($"{t,5}  {tokenIds[t],7}  {Display.Truncate(shown, 24),-24}  {lp,10}");
        }
        double sum = logprobs.Sum(x => (double)x);
        Console.WriteLine($"sum {sum:F4} over {logprobs.Length} predicted tokens (mean {(logprobs.Length > 0 ? sum / logprobs.Length : 0):F4})");
        return 0;
    }
}
