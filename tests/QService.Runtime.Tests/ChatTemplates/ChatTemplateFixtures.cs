using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.ChatTemplates;

/// <summary>
/// tests/fixtures/chat-templates: one folder per template (template.jinja, tokens.json, cases.json), rendered by
/// transformers 4.57.6 with strftime_now fixed at 2 January 2026.
/// </summary>
public static class ChatTemplateFixtures
{
    static readonly Dictionary<string, ChatTemplate> Templates = [];

    public static string Root => Fixtures.Path("chat-templates");

    /// <summary>(folder, case index) of every case of every folder; a folder without cases.json gives index -1, which fails.</summary>
    public static TheoryData<string, int> AllCases()
    {
        var data = new TheoryData<string, int>();
        foreach (string dir in Directory.GetDirectories(Root).Order(StringComparer.Ordinal))
        {
            string folder = Path.GetFileName(dir);
            string casesPath = Path.Combine(dir, "cases.json");
            int count = File.Exists(casesPath) ? Cases(folder).Count : 0;
            if (count == 0) data.Add(folder, -1);
            for (int i = 0; i < count; i++) data.Add(folder, i);
        }
        return data;
    }

    public static JsonArray Cases(string folder) =>
        (JsonArray)JsonNode.Parse(File.ReadAllText(Fixtures.Path("chat-templates", folder, "cases.json")))!["cases"]!;

    /// <summary>The folder's template with exactly the special tokens of tokens.json (null ones not passed), on the fixtures' clock.</summary>
    public static ChatTemplate Template(string folder)
    {
        lock (Templates)
        {
            if (Templates.TryGetValue(folder, out var cached)) return cached;
            string source = File.ReadAllText(Fixtures.Path("chat-templates", folder, "template.jinja"));
            var tokens = JsonNode.Parse(File.ReadAllText(Fixtures.Path("chat-templates", folder, "tokens.json")))!;
            var special = new Dictionary<string, JsonNode?>();
            foreach (string key in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
                if ((string?)tokens[key] is string text) special[key] = text;
            return Templates[folder] = new ChatTemplate(source, special, new FixedClock());
        }
    }

    public static (string Role, string Content)[] Messages(JsonNode messages) =>
        [.. ((JsonArray)messages).Select(m => ((string)m!["role"]!, (string)m["content"]!))];

    public static Dictionary<string, JsonNode?> Kwargs(JsonNode? kwargs) =>
        ((JsonObject?)kwargs ?? []).ToDictionary(p => p.Key, p => p.Value?.DeepClone());
}

/// <summary>The fixtures' strftime_now date: 2 January 2026, 00:00.</summary>
public sealed class FixedClock : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => new(2026, 1, 2, 0, 0, 0, TimeSpan.Zero);

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
