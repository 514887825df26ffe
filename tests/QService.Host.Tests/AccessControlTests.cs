using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using QService.Protos.V1;

namespace QService.Host.Tests;

/// <summary>API keys, TLS and mutual TLS, each on a server of its own, with keys and certificates made here.</summary>
public class AccessControlTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("qservice-tls-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static ScoreRequest Small => new() { Items = { new ScoreItem { Prompt = "Review of the phone:", Response = " The battery is long." } } };

    /// <summary>Starts a server and waits for /readyz (the management port stays plain HTTP whatever the gRPC port speaks).</summary>
    static async Task<ServerProcess> StartReady(params string[] args)
    {
        var server = ServerProcess.Start(args);
        await Polling.Until(async () => (await server.Http.GetAsync("/readyz")).IsSuccessStatusCode, TimeSpan.FromSeconds(120),
            () => $"the server did not become ready: {server.Output}");
        return server;
    }

    [Fact]
    public async Task WithApiKeys_ACallWithoutTheRightKeyIsUnauthenticated_AndTheKeyNeverReachesTheLog()
    {
        const string key = "k3y-0123456789abcdef-secret";
        string file = Path.Combine(_folder, "keys");
        File.WriteAllLines(file, ["# name:key", $"alice:{key}"]);
        await using var server = await StartReady("--Server:ApiKeysFile=" + file);
        var scorer = server.Channel.Scorer;

        var missing = await Assert.ThrowsAsync<RpcException>(async () => await scorer.ScoreAsync(Small));
        Assert.Equal(StatusCode.Unauthenticated, missing.StatusCode);
        Assert.Contains("authorization: Bearer", missing.Status.Detail);
        var wrong = await Assert.ThrowsAsync<RpcException>(async () => await scorer.ScoreAsync(Small,
            new Metadata { { "authorization", "Bearer not-the-key-at-all-0000" } }));
        Assert.Equal(StatusCode.Unauthenticated, wrong.StatusCode);
        var reply = await scorer.ScoreAsync(Small, new Metadata { { "authorization", $"Bearer {key}" } });
        Assert.Single(reply.Results);
        // The standard health check stays open to probes.
        var health = await server.Channel.Health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        Assert.DoesNotContain(key, server.Output);
    }

    [Fact]
    public async Task AKeysFileThatDoesNotExist_StopsTheServerAtStartUp_WithTheReason()
    {
        await using var server = ServerProcess.Start("--Server:ApiKeysFile=/nonexistent/keys");
        Assert.True(await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, server.ExitCode);
        Assert.Contains("Server:ApiKeysFile '/nonexistent/keys' does not exist", server.Output);
    }

    sealed record Pki(X509Certificate2 Ca, X509Certificate2 Server, X509Certificate2 Client, X509Certificate2 Stranger);

    /// <summary>A CA, a server certificate for 127.0.0.1 and a client certificate it issued, and a client certificate it did not.</summary>
    Pki MakePki()
    {
        static X509Certificate2 SelfSigned(string name)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        }
        static X509Certificate2 Issue(X509Certificate2 ca, string name, bool server)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
                [new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
            if (server)
            {
                var names = new SubjectAlternativeNameBuilder();
                names.AddIpAddress(IPAddress.Loopback);
                names.AddDnsName("localhost");
                request.CertificateExtensions.Add(names.Build());
            }
            // Within the CA's own validity (a leaf may not outlive its issuer, and a second has passed since the CA was made).
            using var issued = request.Create(ca, ca.NotBefore.AddDays(1), ca.NotAfter.AddDays(-1), RandomNumberGenerator.GetBytes(8));
            return issued.CopyWithPrivateKey(key);
        }
        var ca = SelfSigned("qservice test CA");
        var other = SelfSigned("another CA");
        return new Pki(ca, Issue(ca, "127.0.0.1", server: true), Issue(ca, "client", server: false), Issue(other, "stranger", server: false));
    }

    string[] TlsArgs(Pki pki, bool mutual)
    {
        void Write(string name, string pem) => File.WriteAllText(Path.Combine(_folder, name), pem);
        Write("server.pem", pki.Server.ExportCertificatePem());
        Write("server.key", pki.Server.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        Write("ca.pem", pki.Ca.ExportCertificatePem());
        var args = new List<string> { $"--Server:TlsCertificatePath={_folder}/server.pem", $"--Server:TlsKeyPath={_folder}/server.key" };
        if (mutual) args.Add($"--Server:TlsClientCaPath={_folder}/ca.pem");
        return [.. args];
    }

    /// <summary>A client that trusts only the test CA, presenting <paramref name="clientCertificate"/> when given.</summary>
    static QScorer.QScorerClient Client(ServerProcess server, Pki pki, X509Certificate2? clientCertificate)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(pki.Ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(new X509Certificate2(certificate!));
        };
        if (clientCertificate != null)
            handler.SslOptions.ClientCertificates = [X509CertificateLoader.LoadPkcs12(clientCertificate.Export(X509ContentType.Pkcs12), null)];
        var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{server.GrpcPort}", new GrpcChannelOptions { HttpHandler = handler });
        return new QScorer.QScorerClient(channel);
    }

    [Fact]
    public async Task WithTls_TheGrpcPortSpeaksTls_AndPlainTextIsRefused()
    {
        var pki = MakePki();
        await using var server = await StartReady(TlsArgs(pki, mutual: false));
        Assert.Single((await Client(server, pki, null).ScoreAsync(Small)).Results);
        await Assert.ThrowsAsync<RpcException>(async () => await server.Channel.Scorer.ScoreAsync(Small)); // http:// to a TLS port
    }

    [Fact]
    public async Task WithMutualTls_OnlyClientsWithACertificateFromTheCaGetIn()
    {
        var pki = MakePki();
        await using var server = await StartReady(TlsArgs(pki, mutual: true));
        Assert.Single((await Client(server, pki, pki.Client).ScoreAsync(Small)).Results);
        await Assert.ThrowsAsync<RpcException>(async () => await Client(server, pki, null).ScoreAsync(Small));
        await Assert.ThrowsAsync<RpcException>(async () => await Client(server, pki, pki.Stranger).ScoreAsync(Small));
    }
}
