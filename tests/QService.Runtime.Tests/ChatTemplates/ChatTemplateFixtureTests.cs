using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.ChatTemplates;

/// <summary>Every fixture case byte for byte: renders, the template's errors, and the DPO split as plain and as TRL makes it.</summary>
public class ChatTemplateFixtureTests
{
    [Theory]
    [MemberData(nameof(ChatTemplateFixtures.AllCases), MemberType = typeof(ChatTemplateFixtures))]
    public void Case_renders_as_transformers(string folder, int index)
    {
        Assert.True(index >= 0, $"{folder} has no cases");
        var c = ChatTemplateFixtures.Cases(folder)[index]!;
        var template = ChatTemplateFixtures.Template(folder);
        var messages = ChatTemplateFixtures.Messages(c["messages"]!);
        var kwargs = ChatTemplateFixtures.Kwargs(c["kwargs"]);
        Assert.All(((JsonArray)c["messages"]!).Select(m => ((JsonObject)m!).Count), count => Assert.Equal(2, count)); // role and content only

        if ((bool?)c["dpo_split"] == true)
        {
            string prompt = template.Render(messages[..^1], addGenerationPrompt: true, kwargs);
            string full = template.Render(messages, addGenerationPrompt: false, kwargs);
            Assert.Equal((string)c["prompt"]!, prompt);
            Assert.Equal((string)c["full"]!, full);
            Assert.Equal((bool)c["full_starts_with_prompt"]!, full.StartsWith(prompt, StringComparison.Ordinal));
            if (full.StartsWith(prompt, StringComparison.Ordinal)) Assert.Equal((string)c["response"]!, full[prompt.Length..]);
            var (trlPrompt, trlResponse) = template.SplitAnswer(messages[..^1], messages[^1].Content, kwargs);
            Assert.Equal((string)c["trl_prompt"]!, trlPrompt);
            Assert.Equal((string)c["trl_response"]!, trlResponse);
        }
        else if (c["expected"] is null)
        {
            var e = Assert.Throws<ChatTemplateException>(() => template.Render(messages, (bool)c["add_generation_prompt"]!, kwargs));
            Assert.Equal(ChatTemplateFailure.Raised, e.Failure);
            Assert.Equal((string)c["error"]!, "TemplateError: " + e.Message);
        }
        else
            Assert.Equal((string)c["expected"]!, template.Render(messages, (bool)c["add_generation_prompt"]!, kwargs));
    }

    [Fact]
    public void Every_folder_has_its_files()
    {
        var folders = Directory.GetDirectories(ChatTemplateFixtures.Root);
        Assert.True(folders.Length >= 9, $"only {folders.Length} template folders");
        foreach (string dir in folders)
            foreach (string file in new[] { "template.jinja", "tokens.json", "cases.json", "source.txt" })
                Assert.True(File.Exists(Path.Combine(dir, file)), $"{Path.GetFileName(dir)} lacks {file}");
    }
}
