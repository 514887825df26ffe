using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using QService.Host.Hosting;

namespace QService.Host.Security;

/// <summary>
/// Optional TLS on the gRPC port (Server:TlsCertificatePath and Server:TlsKeyPath, PEM), and mutual TLS when
/// Server:TlsClientCaPath names the CA (PEM) whose certificates clients must present.
/// </summary>
public static class Tls
{
    public static bool Enabled(ServerOptions server) => !string.IsNullOrEmpty(server.TlsCertificatePath);

    public static HttpsConnectionAdapterOptions Options(ServerOptions server)
    {
        if (string.IsNullOrEmpty(server.TlsKeyPath))
            throw new ConfigurationException("Server:TlsCertificatePath is set but Server:TlsKeyPath is not; give the certificate's private key (PEM)");
        var options = new HttpsConnectionAdapterOptions
            { ServerCertificate = Read("Server:TlsCertificatePath and Server:TlsKeyPath",
                () => X509Certificate2.CreateFromPemFile(server.TlsCertificatePath!, server.TlsKeyPath)) };
        if (!string.IsNullOrEmpty(server.TlsClientCaPath))
        {
            var ca = Read("Server:TlsClientCaPath", () => X509Certificate2.CreateFromPem(File.ReadAllText(server.TlsClientCaPath)));
            options.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            options.ClientCertificateValidation = (certificate, _, _) => IssuedBy(certificate, ca);
        }
        return options;
    }

    /// <summary>A certificate file that is missing, unreadable or not PEM is a setting to fix: its reason, not a stack trace.</summary>
    static X509Certificate2 Read(string settings, Func<X509Certificate2> read)
    {
        try { return read(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new ConfigurationException($"{settings}: {e.Message.TrimEnd('.')}; give PEM files this process can read");
        }
    }

    /// <summary>A client certificate chains to the configured CA (and only to it), and is within its validity.</summary>
    static bool IssuedBy(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
