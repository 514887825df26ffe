using QService.Engine;

namespace QService.Host.Hosting;

/// <summary>
/// Every settings section, bound and checked in one place before anything starts: a setting that is not a
/// number where one is needed, or any problem that <see cref="OptionsProblems"/> and <see cref="ServerOptionsProblems"/>
/// name, stops the process with all the reasons (exit code 1).
/// </summary>
public static class StartupSettings
{
    /// <summary>The Server section, once every section has been checked; throws <see cref="ConfigurationException"/> listing the problems.</summary>
    public static ServerOptions Check(IConfiguration configuration)
    {
        var problems = new List<string>();
        T Bind<T>(string section) where T : new()
        {
            try { return configuration.GetSection(section).Get<T>() ?? new T(); }
            catch (InvalidOperationException e)
            {
                // The binder's message names the key, the value and the type it could not convert it to.
                problems.Add(e.Message.TrimEnd('.'));
                return new T();
            }
        }
        var server = Bind<ServerOptions>("Server");
        var models = Bind<ModelOptions>("Models");
        var batching = Bind<BatchingOptions>("Batching");
        var limits = Bind<RequestLimits>("Limits");
        var cache = Bind<PrefixCacheOptions>("PrefixCache");
        // A renamed setting is refused by its old name rather than silently ignored.
        if (configuration["Models:MklAvx512"] is not null)
            problems.Add("Models:MklAvx512 was renamed Models:MklVendorOverride (it now covers AVX2-only CPUs too); set that instead");
        problems.AddRange(ServerOptionsProblems.Of(server));
        problems.AddRange(OptionsProblems.Of(models));
        problems.AddRange(OptionsProblems.Of(batching));
        problems.AddRange(OptionsProblems.Of(limits, batching));
        problems.AddRange(OptionsProblems.Of(cache));
        problems.AddRange(Rewards.RewardOptions.Problems(configuration));
        if (problems.Count > 0) throw new ConfigurationException(string.Join("; ", problems));
        return server;
    }
}
