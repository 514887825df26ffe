using System.Net;
using System.Text;
using System.Text.Json;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>A plain HTTP client of a server's JSON port, as OpenAI-compatible clients call it, and the gRPC calls the tests compare with.</summary>
public sealed class OpenAiHttp(ServerProcess server, string? apiKey = null) : IDisposable
{
    readonly HttpClient _http = new() { BaseAddress = new Uri($"http://127.0.0.1:{server.ApiPort}"), Timeout = TimeSpan.FromSeconds(120) };

    public async Task<(HttpStatusCode Status, string Body)> Send(HttpMethod method, string route, string? json = null)
    {
        using var request = new HttpRequestMessage(method, route);
        if (json != null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        if (apiKey != null) request.Headers.Authorization = new("Bearer", apiKey);
        using var response = await _http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>POSTs and expects 200 with a JSON body.</summary>
    public async Task<JsonElement> Post(string route, object body)
    {
        var (status, text) = await Send(HttpMethod.Post, route, JsonSerializer.Serialize(body));
        Assert.True(status == HttpStatusCode.OK, $"{route}: {(int)status} {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    public async Task<JsonElement> Get(string route)
    {
        var (status, text) = await Send(HttpMethod.Get, route);
        Assert.True(status == HttpStatusCode.OK, $"{route}: {(int)status} {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    /// <summary>A refused request: its status and OpenAI's {"error": {message, type, param, code}}.</summary>
    public async Task<JsonElement> Error(string route, string json, HttpStatusCode expected)
    {
        var (status, text) = await Send(HttpMethod.Post, route, json);
        Assert.True(status == expected, $"{route} {json}: expected {(int)expected}, got {(int)status} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        foreach (var key in new[] { "message", "type", "param", "code" }) Assert.True(error.TryGetProperty(key, out _), $"no error.{key} in {text}");
        return error;
    }

    /// <summary>gRPC Score of one item given as ids.</summary>
    public async Task<ScoredItem> Score(IEnumerable<int> prompt, IEnumerable<int> response, string policy = "")
    {
        var reply = await server.Channel.Scorer.ScoreAsync(new ScoreRequest
        {
            Items = { new ScoreItem { PromptTokenIds = { prompt }, ResponseTokenIds = { response }, Policy = policy } },
        });
        return reply.Results[0];
    }

    public static double[] Doubles(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetDouble())];

    public static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];

    public static void Close(IReadOnlyList<float> expected, IReadOnlyList<double> actual, string what)
    {
        Assert.True(expected.Count == actual.Count, $"{what}: {actual.Count} values, expected {expected.Count}");
        for (int i = 0; i < expected.Count; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"{what}[{i}]: {actual[i]}, expected {expected[i]}");
    }

    public void Dispose() => _http.Dispose();
}
