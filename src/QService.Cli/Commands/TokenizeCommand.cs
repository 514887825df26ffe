using System.CommandLine;
using System.Text.Json;
using QService.Runtime.Tokenization;

namespace QService.Cli.Commands;

/// <summary>`qservice tokenize`: ids, token strings and code-point offsets of a text.</summary>
static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
            { Description = "model folder holding tokenizer.json (and tokenizer_config.json), or a folder with only tokenizer.json", Required = true };
        var text = new Option<string>("--text") { Description = "text to tokenize", Required = true };
        var json = new Option<bool>("--json") { Description = "print {\"ids\":[...],\"offsets\":[[s,e],...]} (offsets in Unicode code points)" };
        var special = new Option<bool>("--add-special-tokens") { Description = "add BOS when the tokenizer's config asks for it" };
        var cmd = new Command("tokenize", "Tokenize text with a HuggingFace tokenizer.json.") { model, text, json, special };
        cmd.SetAction(r => CliErrors.Run(() => Execute(r.GetValue(model)!, r.GetValue(text)!, r.GetValue(json), r.GetValue(special))));
        return cmd;
    }

    static int Execute(string modelDir, string text, bool json, bool addSpecial)
    {
        using var tokenizer = HfTokenizer.Load(modelDir);
        var enc = tokenizer.Encode(text, addSpecial);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["ids"] = enc.Ids,
                ["tokens"] = enc.Tokens,
                ["offsets"] = enc.Offsets.Select(o => new[] { o.Start, o.End }).ToArray(),
            }));
            return 0;
        }
        Console.WriteLine($"{enc.Ids.Length} tokens");
        Console.WriteLine($"{"#",4}  {"id",7}  {"token",-20}  {"offsets",-10}  text");
        int[] codePoints = text.EnumerateRunes().Select(r => r.Value).ToArray();
        for (int i = 0; i < enc.Ids.Length; i++)
        {
            var o = enc.Offsets[i];
            string span = string.Concat(codePoints[o.Start..o.End].Select(char.ConvertFromUtf32));
            Console.WriteLine($"{i,4}  {enc.Ids[i],7}  {Display.Quote(enc.Tokens[i]),-20}  {$"[{o.Start},{o.End})",-10}  {Display.Quote(span)}");
        }
        return 0;
    }
}
