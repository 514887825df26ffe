namespace QService.Host.Hosting;

/// <summary>A setting the host cannot start with (a missing keys file, a certificate without its key): the process exits 1 with the reason.</summary>
public sealed class ConfigurationException(string message) : Exception(message);
