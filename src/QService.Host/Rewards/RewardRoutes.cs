using Microsoft.Extensions.Options;
using QService.Engine;
using QService.Host.Security;
using QService.Host.Telemetry;

namespace QService.Host.Rewards;

/// <summary>The RL trainers' reward protocols on the JSON port: OpenRLHF's /get_reward, slime's /reward and vLLM's /pooling.</summary>
public static class RewardRoutes
{
    static readonly string[] Routes = [OpenRlhfReward.Route, SlimeReward.Route, PoolingRoute.Route];

    /// <summary>Whether a path is one of these routes (the JSON port serves them beside /v1/...).</summary>
    public static bool Owns(PathString path) => Routes.Any(r => path.Equals(r, StringComparison.Ordinal));

    public static void MapQServiceRewards(this WebApplication app)
    {
        var options = app.Configuration.GetSection(RewardOptions.Section).Get<RewardOptions>() ?? new RewardOptions();
        var limits = app.Services.GetRequiredService<IOptions<RequestLimits>>().Value;
        var call = new RouteCall(app.Services.GetRequiredService<ApiKeys>(), app.Services.GetRequiredService<HostMetrics>(),
            app.Services.GetRequiredService<ILogger<RouteCall>>(), Hosting.HostingExtensions.MaxReceiveBytes(limits));
        var engine = app.Services.GetRequiredService<ScoringEngine>();
        RequestDelegate Serve(string route, Func<RouteRequest, Task<RouteAnswer>> handler) => ctx => call.RunAsync(ctx, route, handler);
        app.MapPost(OpenRlhfReward.Route, Serve(OpenRlhfReward.Route, r => OpenRlhfReward.HandleAsync(r, engine, options)));
        app.MapPost(SlimeReward.Route, Serve(SlimeReward.Route, r => SlimeReward.HandleAsync(r, engine, options)));
        app.MapPost(PoolingRoute.Route, Serve(PoolingRoute.Route, r => PoolingRoute.HandleAsync(r, engine)));
    }
}
