using System.Text.Json.Nodes;
using QService.Runtime.Tokenization;

namespace QService.Runtime.Tests.ChatTemplates;

/// <summary>
/// Where @huggingface/jinja differs from Python Jinja, the bridge's shims; each expected text was rendered by Jinja
/// 3.1.6 with transformers' settings (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its
/// tojson, strftime_now at 2 January 2026).
/// </summary>
public class ChatTemplateShimTests
{
    static readonly Dictionary<string, JsonNode?> NoTokens = [];

    static string Render(string template, string content, ChatRenderLimits? limits = null) =>
        new ChatTemplate(template, NoTokens, new FixedClock(), limits).Render([("user", content), ("assistant", "y"), ("user", "z")], false);

    [Theory]
    [InlineData("{{ messages[0].content.lstrip('\\n') }}|{{ messages[0].content.strip() }}|{{ messages[0].content.rstrip(' \\n') }}",
        "\n  a b \u001c\u0085\n", "  a b \u001c\u0085\n|a b|\n  a b \u001c\u0085")]
    [InlineData("[{{ messages[0].content.strip() }}]", "\ufeffx\ufeff", "[\ufeffx\ufeff]")]
    [InlineData("{{ messages[0].content | tojson }}", "é\n\"\t\u0001 ✓ 🚀", "\"é\\n\\\"\\t\\u0001 ✓ 🚀\"")]
    [InlineData("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n", "x", "a\nb\nc")]
    [InlineData("{{ strftime_now('%d %b %Y|%-d %B|%A %a %j %y %H:%M:%S %p|%e') }}", "x", "02 Jan 2026|2 January|Friday Fri 002 26 00:00:00 AM| 2")]
    [InlineData("{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.content }}{% break %}{% endfor %}", "x", "y")]
    [InlineData("{% for m in messages %}{{ m.content }}{% break %}{% endfor %}", "x", "x")]
    [InlineData("{% for m in messages %}{% if not loop.first %}{{ m.content }}{% break %}{% endif %}{% endfor %}", "x", "y")]
    [InlineData("{% for a in [1,2] %}[{% for m in messages %}{{ m.content }}{% if m.content == 'y' %}!{% break %}{% endif %}{% endfor %}]{{ a }}{% endfor %}",
        "x", "[xy!]1[xy!]2")]
    [InlineData("{% for m in messages %}{{ m.content }}{% if loop.last %}{% break %}{% endif %}{% endfor %}{% for m in messages %}{{ m.content }}{% endfor %}",
        "x", "xyzxyz")]
    public void Renders_as_python_jinja(string template, string content, string expected) => Assert.Equal(expected, Render(template, content));

    [Fact]
    public void A_render_variable_shadows_a_global_and_kwargs_and_special_tokens_are_variables()
    {
        var template = new ChatTemplate("{{ bos_token }}{{ range }}|{{ strftime_now('%Y') }}|{{ tools is none }}{{ documents is none }}",
            new Dictionary<string, JsonNode?> { ["bos_token"] = "<s>" }, new FixedClock());
        Assert.Equal("<s>7|2026|truetrue", template.Render([("user", "x")], false, new Dictionary<string, JsonNode?> { ["range"] = 7 }));
    }

    [Fact]
    public void Raise_exception_is_the_templates_refusal_with_its_message_and_other_errors_are_failures()
    {
        var raised = Assert.Throws<ChatTemplateException>(() => Render("{{ raise_exception('Roles must alternate ' + messages[0].role) }}", "x"));
        Assert.Equal((ChatTemplateFailure.Raised, "Roles must alternate user"), (raised.Failure, raised.Message));
        var failed = Assert.Throws<ChatTemplateException>(() => Render("{{ messages | nosuchfilter }}", "x"));
        Assert.Equal(ChatTemplateFailure.Failed, failed.Failure);
        var parse = Assert.Throws<ChatTemplateException>(() => Render("{% if %}", "x"));
        Assert.StartsWith("the chat template does not parse", parse.Message);
    }

    [Theory]
    [InlineData("{% for i in range(100000) %}{{ i }}{% endfor %}", 200_000, "too many statements")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", 50_000_000, "nested too deep")]
    public void A_render_past_its_bounds_stops_and_the_template_still_serves(string template, int maxStatements, string bound)
    {
        var chat = new ChatTemplate(template + "{% if messages[0].content == 'ok' %}done{% endif %}", NoTokens, new FixedClock(),
            new ChatRenderLimits(MaxStatements: maxStatements, TimeoutSeconds: 30));
        var e = Assert.Throws<ChatTemplateException>(() => chat.Render([("user", "x")], false));
        Assert.Equal(ChatTemplateFailure.TooLarge, e.Failure);
        Assert.Contains(bound, e.Message);
        var small = new ChatTemplate("{{ messages[0].content }}", NoTokens, limits: new ChatRenderLimits(MaxStatements: 200_000));
        Assert.Equal("ok", small.Render([("user", "ok")], false));
    }

    [Fact]
    public void A_render_that_takes_too_long_stops()
    {
        var chat = new ChatTemplate("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", NoTokens,
            limits: new ChatRenderLimits(TimeoutSeconds: 0.2));
        var e = Assert.Throws<ChatTemplateException>(() => chat.Render([("user", "x")], false));
        Assert.Contains("took too long", e.Message);
    }

    [Fact]
    public void Renders_in_parallel_equal_the_sequential_ones()
    {
        var template = ChatTemplateFixtures.Template("qwen3");
        var inputs = Enumerable.Range(0, 8).Select(i => ("user", $"question {i} ✓")).ToArray();
        string[] sequential = [.. inputs.Select(m => template.Render([m], true))];
        var parallel = new string[inputs.Length];
        Parallel.For(0, inputs.Length, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i => parallel[i] = template.Render([inputs[i]], true));
        Assert.Equal(sequential, parallel);
        Assert.All(sequential.Select((s, i) => (s, i)), p => Assert.Contains($"question {p.i} ✓", p.s));
    }

    [Fact]
    public void A_split_never_cuts_a_surrogate_pair()
    {
        // The prompt ends in one emoji, the answer starts with another sharing its high surrogate: the split keeps the pair whole.
        var template = new ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}😀{% endif %}", NoTokens);
        var (prompt, response) = template.SplitAnswer([("user", "a")], "😁b");
        Assert.Equal(("a", "😁b"), (prompt, response));
    }
}
