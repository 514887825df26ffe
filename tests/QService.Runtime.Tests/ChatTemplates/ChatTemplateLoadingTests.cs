using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.ChatTemplates;

/// <summary>Where a checkpoint's template and special tokens come from, as transformers 4.57 reads them.</summary>
public class ChatTemplateLoadingTests
{
    const string Probe = "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ additional_special_tokens | join(',') }}|{{ messages[0].content }}";

    static HfTokenizer LoadWith(TempFolder folder, JsonNode? chatTemplate, string? jinjaFile = null)
    {
        folder.WithFilesFrom(Fixtures.DemoPair("policy"), "model.safetensors", "tokenizer_config.json", "config.json", "qservice-pair.json");
        var config = new JsonObject
        {
            ["bos_token"] = new JsonObject { ["content"] = "<|endoftext|>", ["lstrip"] = false },
            ["eos_token"] = "</e>",
            ["pad_token"] = null,
            ["additional_special_tokens"] = new JsonArray("<a>", new JsonObject { ["content"] = "<b>" }),
            ["chat_template"] = chatTemplate,
        };
        File.WriteAllText(folder.File("tokenizer_config.json"), config.ToJsonString());
        if (jinjaFile != null) File.WriteAllText(folder.File("chat_template.jinja"), jinjaFile);
        return HfTokenizer.Load(folder.Path);
    }

    static string Render(HfTokenizer tokenizer) => tokenizer.ChatTemplate!.Render([("user", "hi")], true);

    [Fact]
    public void A_string_in_tokenizer_config_renders_with_its_special_tokens_strings_or_added_token_objects()
    {
        using var folder = new TempFolder();
        using var tokenizer = LoadWith(folder, Probe);
        Assert.Equal("<|endoftext|>|</e>||<a>,<b>|hi", Render(tokenizer));
        Assert.Null(tokenizer.ChatTemplateProblem);
    }

    [Fact]
    public void The_list_form_uses_the_template_named_default()
    {
        using var folder = new TempFolder();
        using var tokenizer = LoadWith(folder, new JsonArray(
            new JsonObject { ["name"] = "tool_use", ["template"] = "tools" },
            new JsonObject { ["name"] = "default", ["template"] = "default {{ messages[0].content }}" }));
        Assert.Equal("default hi", Render(tokenizer));
    }

    [Fact]
    public void Chat_template_jinja_wins_over_tokenizer_config()
    {
        using var folder = new TempFolder();
        using var tokenizer = LoadWith(folder, "config", jinjaFile: "file {{ eos_token }}\n");
        Assert.Equal("file </e>", Render(tokenizer));
    }

    [Fact]
    public void No_template_or_an_unusable_one_leaves_none_and_says_why()
    {
        using (var folder = new TempFolder())
        using (var none = LoadWith(folder, null))
            Assert.Equal((null, null), (none.ChatTemplate, none.ChatTemplateProblem));
        using (var folder = new TempFolder())
        using (var noDefault = LoadWith(folder, new JsonArray(new JsonObject { ["name"] = "rag", ["template"] = "x" })))
        {
            Assert.Null(noDefault.ChatTemplate);
            Assert.Equal("tokenizer_config.json has several chat templates and none named \"default\"", noDefault.ChatTemplateProblem);
        }
        using (var folder = new TempFolder())
        using (var broken = LoadWith(folder, "{% for %}"))
        {
            Assert.Null(broken.ChatTemplate);
            Assert.StartsWith("the chat template does not parse", broken.ChatTemplateProblem);
        }
        using var demo = HfTokenizer.Load(Fixtures.DemoPair("policy"));
        Assert.Null(demo.ChatTemplate);
    }
}
