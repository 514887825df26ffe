using Microsoft.Extensions.Options;
using QService.Engine;
using QService.Host.Hosting;
using QService.Host.Security;
using QService.Host.Telemetry;

namespace QService.Host.OpenAi;

/// <summary>The OpenAI- and vLLM-compatible routes of the JSON (HTTP API) port.</summary>
public static class OpenAiRoutes
{
    /// <summary>vLLM's tokenizer routes sit at the root, outside /v1: the port filter lets them through on the API port only.</summary>
    static readonly string[] RootPaths = ["/tokenizer_info", "/tokenize", "/detokenize"];

    public static bool IsRootPath(PathString path) => RootPaths.Any(p => path.Equals(p, StringComparison.Ordinal));

    public static void MapOpenAiRoutes(this WebApplication app)
    {
        var services = app.Services;
        var engine = services.GetRequiredService<ScoringEngine>();
        var limits = services.GetRequiredService<IOptions<RequestLimits>>().Value;
        var endpoint = new OpenAiEndpoint(services.GetRequiredService<HostMetrics>(), services.GetRequiredService<ApiKeys>(),
            services.GetRequiredService<ILogger<OpenAiEndpoint>>(), HostingExtensions.MaxReceiveBytes(limits));
        var models = new ModelsRoute(engine);
        var completions = new CompletionsRoute(engine, limits);
        var chat = new ChatRoute(engine, limits);
        var tokenizer = new TokenizerRoutes(engine);
        app.MapGet("/v1/models", endpoint.Handle("/v1/models", models.ListAsync));
        app.MapGet("/v1/models/{id}", endpoint.Handle("/v1/models/{id}", models.GetAsync));
        app.MapPost("/v1/completions", endpoint.Handle("/v1/completions", completions.HandleAsync));
        app.MapPost("/v1/chat/completions", endpoint.Handle("/v1/chat/completions", chat.HandleAsync));
        app.MapGet("/tokenizer_info", endpoint.Handle("/tokenizer_info", tokenizer.InfoAsync));
        app.MapPost("/tokenize", endpoint.Handle("/tokenize", tokenizer.TokenizeAsync));
        app.MapPost("/detokenize", endpoint.Handle("/detokenize", tokenizer.DetokenizeAsync));
    }
}
