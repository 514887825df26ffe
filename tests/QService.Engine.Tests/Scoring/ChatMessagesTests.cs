using System.Text.Json.Nodes;
using QService.Engine.Tests.Batching;
using QService.Runtime.Tokenization;
using static QService.Engine.Tests.Scoring.FakeEngine;

namespace QService.Engine.Tests.Scoring;

/// <summary>
/// Items whose prompt is messages, on the fake pair with the demo tokenizer plus a chat template (Dolphin 3's ChatML):
/// each runs exactly the tokens of the rendered prompt (tokenised as TRL does, without an added BOS) and the
/// rendered answer, and every way to get them wrong names the field.
/// </summary>
public sealed class ChatMessagesTests : IDisposable
{
    static readonly ChatTurn[] Conversation = [new("system", "Be brief."), new("user", "Review of the phone:")];
    const string Answer = " The battery is long.";

    readonly string _folder = Directory.CreateTempSubdirectory("qservice-chat-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>The demo policy's tokenizer with a chat template written into a copy of its tokenizer_config.json.</summary>
    HfTokenizer TokenizerWith(string template)
    {
        string demo = Path.GetDirectoryName(typeof(ChatMessagesTests).Assembly.Location)!;
        for (var dir = new DirectoryInfo(demo); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "QService.sln"))) demo = Path.Combine(dir.FullName, "models", "demo", "policy");
        File.Copy(Path.Combine(demo, "tokenizer.json"), Path.Combine(_folder, "tokenizer.json"), overwrite: true);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(demo, "tokenizer_config.json")))!;
        config["chat_template"] = template;
        File.WriteAllText(Path.Combine(_folder, "tokenizer_config.json"), config.ToJsonString());
        return HfTokenizer.Load(_folder);
    }

    static string Dolphin()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "tests", "fixtures", "chat-templates", "dolphin3-chatml", "template.jinja");
            if (File.Exists(path)) return File.ReadAllText(path);
        }
        throw new FileNotFoundException("tests/fixtures/chat-templates/dolphin3-chatml/template.jinja not found");
    }

    async Task<(ScoringEngine Engine, FakeBackend Backend, HfTokenizer Tokenizer)> StartWith(string? template = null)
    {
        var tokenizer = template is null ? DemoTokenizer() : TokenizerWith(template);
        var backend = Backend();
        var models = WithTokenizer(tokenizer);
        var engine = await StartAsync(backend, models with { Info = models.Info with { MaxContext = 4096 } });
        return (engine, backend, tokenizer);
    }

    [Fact]
    public async Task Score_runs_the_rendered_prompt_and_the_answers_turn_as_token_ids_would()
    {
        var (engine, backend, tokenizer) = await StartWith(Dolphin());
        using var _ = engine;
        const string prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nReview of the phone:<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(prompt, engine.RenderChat(Conversation, addGenerationPrompt: true));
        int[] promptIds = tokenizer.EncodeIds(prompt, addSpecialTokens: false), answerIds = tokenizer.EncodeIds(Answer + "<|im_end|>\n", false);

        var chat = (await engine.ScoreAsync([new ScoreItemInput { Id = "chat", Messages = Conversation, Response = Answer }],
            new ScoreOptions(IncludeTokenText: true), default))[0];
        var chatCalls = backend.Calls.ToList();
        backend.Calls.Clear();
        var ids = (await engine.ScoreAsync([Ids(promptIds, answerIds, "chat")], new ScoreOptions(), default))[0];

        Assert.Equal(promptIds.Length, chat.PromptTokens);
        Assert.Equal(answerIds, chat.TokenIds);
        Assert.Equal(ids.Reward, chat.Reward);
        Assert.Equal(ids.Credits, chat.Credits);
        Assert.Equal(backend.Calls.SelectMany(c => c.Sequences.SelectMany(s => s)), chatCalls.SelectMany(c => c.Sequences.SelectMany(s => s)));
        Assert.Equal(Answer + "<|im_end|>\n", tokenizer.Decode(chat.TokenIds));
        Assert.Equal(chat.TokenIds.Length, chat.Tokens!.Length);
        Assert.Equal(promptIds, engine.ChatPromptTokenIds(Conversation));

        // The same text as a text item gets the demo tokenizer's BOS in front: the one difference TRL's tokenisation avoids.
        var text = (await engine.ScoreAsync([new ScoreItemInput { Prompt = prompt, Response = Answer + "<|im_end|>\n" }], new ScoreOptions(), default))[0];
        Assert.Equal(promptIds.Length + 1, text.PromptTokens);
        Assert.Equal(chat.TokenIds, text.TokenIds);
    }

    [Fact]
    public async Task Response_ids_follow_the_rendered_prompt_and_NextTokens_continues_the_generation_prompt()
    {
        var (engine, backend, tokenizer) = await StartWith(Dolphin());
        using var _ = engine;
        int[] promptIds = engine.ChatPromptTokenIds(Conversation), partial = tokenizer.EncodeIds(Answer, false);

        var chat = (await engine.ScoreAsync([new ScoreItemInput { Messages = Conversation, ResponseTokenIds = partial }], new ScoreOptions(), default))[0];
        Assert.Equal(promptIds.Length, chat.PromptTokens);
        Assert.Equal(partial, chat.TokenIds);

        var next = (await engine.NextTokensAsync([new ScoreItemInput { Messages = Conversation, Response = Answer }], new(3, null), default))[0];
        var nextIds = (await engine.NextTokensAsync([Ids(promptIds, partial)], new(3, null), default))[0];
        Assert.Equal((promptIds.Length, partial.Length), (next.PromptTokens, next.ResponseTokens));
        Assert.Equal(nextIds.Candidates.Select(c => c.Id), next.Candidates.Select(c => c.Id));
        Assert.Equal(nextIds.Q, next.Q);

        var sampled = await engine.SampleAsync(new ScoreItemInput { Messages = Conversation }, new() { N = 1, MaxNewTokens = 2, Seed = 3 }, default);
        Assert.Equal(promptIds.Length, sampled.PrefixTokens);
    }

    public static TheoryData<string, ScoringErrorKind, string> Refusals => new()
    {
        { "withPrompt", ScoringErrorKind.InvalidArgument, "item 0 ('x'): messages and prompt are both set" },
        { "withPromptIds", ScoringErrorKind.InvalidArgument, "item 0 ('x'): messages and prompt_token_ids are both set" },
        { "emptyRole", ScoringErrorKind.InvalidArgument, "item 0 ('x'): messages[1].role is empty" },
        { "oddRole", ScoringErrorKind.InvalidArgument, "item 0 ('x'): messages[0].role is 'us er'" },
        { "raises", ScoringErrorKind.InvalidArgument, "item 0 ('x'): messages: the chat template refused them: System role not supported" },
        { "fails", ScoringErrorKind.InvalidArgument, "item 0 ('x'): messages: the chat template failed on them: " },
        { "noResponse", ScoringErrorKind.InvalidArgument, "item 0 ('x'): the response is empty" },
    };

    const string Gemma = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
        "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}" +
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Bad_messages_are_refused_naming_the_field(string kind, ScoringErrorKind expectedKind, string expected)
    {
        var (engine, _, _) = await StartWith(kind == "fails" ? "{{ messages[0].content.nosuchmethod() }}" : Gemma);
        using var __ = engine;
        ChatTurn[] user = [new("user", "hi")];
        var item = kind switch
        {
            "withPrompt" => new ScoreItemInput { Messages = user, Prompt = "p", Response = "r" },
            "withPromptIds" => new ScoreItemInput { Messages = user, PromptTokenIds = [1], Response = "r" },
            "emptyRole" => new ScoreItemInput { Messages = [new("user", "a"), new("", "b")], Response = "r" },
            "oddRole" => new ScoreItemInput { Messages = [new("us er", "a")], Response = "r" },
            "raises" => new ScoreItemInput { Messages = Conversation, Response = "r" },
            "fails" => new ScoreItemInput { Messages = user, Response = "r" },
            _ => new ScoreItemInput { Messages = user },
        };
        var error = await Assert.ThrowsAsync<ScoringException>(() => engine.ScoreAsync([item with { Id = "x" }], new ScoreOptions(), default));
        Assert.Equal(expectedKind, error.Kind);
        Assert.StartsWith(expected, error.Message);
        var still = await engine.ScoreAsync([Ids([1], [2])], new ScoreOptions(), default);
        Assert.Equal([2], still[0].TokenIds); // still serving
    }

    [Fact]
    public async Task Without_a_template_messages_are_refused_naming_messages()
    {
        var (engine, _, _) = await StartWith();
        using var _ = engine;
        Assert.False(engine.HasChatTemplate);
        var error = await Assert.ThrowsAsync<ScoringException>(() =>
            engine.ScoreAsync([new ScoreItemInput { Messages = Conversation, Response = Answer }], new ScoreOptions(), default));
        Assert.Equal(ScoringErrorKind.InvalidArgument, error.Kind);
        Assert.Contains("item 0: messages need the checkpoint's chat template, and this server has none usable (no chat_template", error.Message);
        var direct = Assert.Throws<ScoringException>(() => engine.RenderChat(Conversation, true));
        Assert.StartsWith("messages need the checkpoint's chat template", direct.Message);
    }

    [Fact]
    public async Task A_template_the_engine_cannot_parse_leaves_text_prompts_working_and_says_why()
    {
        var (engine, _, tokenizer) = await StartWith("{% for m in messages %}{{ m.content }");
        using var _ = engine;
        Assert.False(engine.HasChatTemplate);
        Assert.Contains("does not parse", tokenizer.ChatTemplateProblem);
        var error = await Assert.ThrowsAsync<ScoringException>(() =>
            engine.ScoreAsync([new ScoreItemInput { Messages = Conversation, Response = Answer }], new ScoreOptions(), default));
        Assert.Contains("has none usable (the chat template does not parse", error.Message);
        Assert.Single(await engine.ScoreAsync([new ScoreItemInput { Prompt = "a", Response = " b" }], new ScoreOptions(), default));
    }
}
