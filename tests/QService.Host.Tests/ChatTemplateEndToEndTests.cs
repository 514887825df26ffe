using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>
/// A server on a copy of the demo pair whose tokenizer has a chat template (Dolphin 3's ChatML, opened by bos_token as
/// Llama's templates are): messages over real sockets, in gRPC and JSON, score as the rendered text does.
/// </summary>
public sealed class ChatTemplateServer : IAsyncLifetime
{
    readonly TempFolder _folder = new();

    public ServerProcess Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        foreach (string role in new[] { "policy", "reference" })
        {
            Directory.CreateDirectory(Path.Combine(_folder.Path, role));
            foreach (string file in Directory.GetFiles(Fixtures.DemoPair(role)))
                File.Copy(file, Path.Combine(_folder.Path, role, Path.GetFileName(file)));
        }
        string config = Path.Combine(_folder.Path, "policy", "tokenizer_config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!;
        json["chat_template"] = "{{ bos_token }}" + File.ReadAllText(Fixtures.Path("chat-templates", "dolphin3-chatml", "template.jinja"));
        File.WriteAllText(config, json.ToJsonString());
        Server = await ServerProcess.StartServingAsync("--policy", Path.Combine(_folder.Path, "policy"),
            "--reference", Path.Combine(_folder.Path, "reference"));
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _folder.Dispose();
    }
}

public class ChatTemplateEndToEndTests(ChatTemplateServer fixture) : IClassFixture<ChatTemplateServer>
{
    readonly QScorer.QScorerClient _scorer = fixture.Server.Channel.Scorer;
    const string Answer = " The battery is long.";
    // The render without its leading bos_token, which the demo tokenizer adds to a text prompt by itself.
    const string Rendered = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nReview of the phone:<|im_end|>\n<|im_start|>assistant\n";

    static ScoreItem Chat(string response = Answer) => new()
    {
        Id = "chat",
        Messages = { new ChatMessage { Role = "system", Content = "Be brief." }, new ChatMessage { Role = "user", Content = "Review of the phone:" } },
        Response = response,
    };

    [Fact]
    public async Task Score_with_messages_equals_the_rendered_text_with_one_bos_and_the_answers_turn()
    {
        Assert.True((await _scorer.GetModelInfoAsync(new GetModelInfoRequest())).HasChatTemplate);
        var reply = await _scorer.ScoreAsync(new ScoreRequest
        {
            Items = { Chat(), new ScoreItem { Id = "text", Prompt = Rendered, Response = Answer + "<|im_end|>\n" } },
            IncludeTokenText = true,
        });
        var (chat, text) = (reply.Results[0], reply.Results[1]);
        Assert.Equal(text.PromptTokens, chat.PromptTokens);
        Assert.Equal(text.TokenIds, chat.TokenIds);
        // Same tokens; batched side by side, the numbers agree to the service's 1e-5.
        Close(text.PolicyLogprobs, chat.PolicyLogprobs);
        Close(text.ReferenceLogprobs, chat.ReferenceLogprobs);
        Close(text.Credits, chat.Credits);
        Assert.Equal(text.Reward, chat.Reward, 1e-5);
        Assert.Equal(Answer + "<|im_end|>\n", string.Concat(chat.TokenTexts));
    }

    static void Close(IReadOnlyList<float> expected, IReadOnlyList<float> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i], 1e-5f);
    }

    [Fact]
    public async Task NextTokens_and_the_json_route_take_messages_too()
    {
        var next = await _scorer.NextTokensAsync(new NextTokensRequest
        {
            Items = { Chat(" The battery is"), new ScoreItem { Prompt = Rendered, Response = " The battery is" } },
            TopK = 4,
        });
        Assert.Equal(next.Results[1].Candidates.Select(c => c.Id), next.Results[0].Candidates.Select(c => c.Id));
        Close([.. next.Results[1].Candidates.Select(c => c.PolicyLogprob)], [.. next.Results[0].Candidates.Select(c => c.PolicyLogprob)]);
        Assert.Equal(next.Results[1].Q, next.Results[0].Q, 1e-5);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{fixture.Server.ApiPort}") };
        const string body = """
            {"items":[{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Review of the phone:"}],
            "response":" The battery is long."}]}
            """;
        var response = await http.PostAsync("/v1/score", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var grpc = await _scorer.ScoreAsync(new ScoreRequest { Items = { Chat() } });
        Assert.Equal(grpc.Results[0].Reward, json.GetProperty("results")[0].GetProperty("reward").GetDouble(), 1e-6);
    }

    [Fact]
    public async Task Messages_with_a_prompt_or_a_bad_role_are_invalid_naming_the_field()
    {
        var both = Chat();
        both.Prompt = "x";
        var e = await Assert.ThrowsAsync<RpcException>(() => _scorer.ScoreAsync(new ScoreRequest { Items = { both } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("item 0 ('chat'): messages and prompt are both set", e.Status.Detail);
        var badRole = Chat();
        badRole.Messages.Add(new ChatMessage { Role = "", Content = "x" });
        e = await Assert.ThrowsAsync<RpcException>(() => _scorer.ScoreAsync(new ScoreRequest { Items = { badRole } }).ResponseAsync);
        Assert.Contains("messages[2].role is empty", e.Status.Detail);
    }
}

[Collection(nameof(DefaultServerCollection))]
public class NoChatTemplateTests(DefaultServer fixture)
{
    [Fact]
    public async Task The_demo_pair_has_no_template_and_refuses_messages_naming_them()
    {
        var scorer = fixture.Server.Channel.Scorer;
        Assert.False((await scorer.GetModelInfoAsync(new GetModelInfoRequest())).HasChatTemplate);
        var item = new ScoreItem { Messages = { new ChatMessage { Role = "user", Content = "hi" } }, Response = " ok" };
        var e = await Assert.ThrowsAsync<RpcException>(() => scorer.ScoreAsync(new ScoreRequest { Items = { item } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("item 0: messages need the checkpoint's chat template", e.Status.Detail);
    }
}
