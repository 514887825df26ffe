using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using QService.Client;

namespace QService.TestSupport;

/// <summary>
/// The real QService host, started as its own process on free loopback ports, with a real gRPC channel
/// to it. Its console output is kept for failure messages.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    readonly Process _process;
    readonly StringBuilder _output = new();

    public int GrpcPort { get; }
    public int HttpPort { get; }
    /// <summary>JSON over HTTP/1.1 (the transcoded RPCs).</summary>
    public int ApiPort { get; }
    public QServiceChannel Channel { get; }
    public HttpClient Http { get; }
    public string Output { get { lock (_output) return _output.ToString(); } }

    ServerProcess(Process process, int grpcPort, int httpPort, int apiPort)
    {
        _process = process;
        GrpcPort = grpcPort;
        HttpPort = httpPort;
        ApiPort = apiPort;
        Channel = new QServiceChannel($"http://127.0.0.1:{grpcPort}");
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>The server's resident memory, from /proc.</summary>
    public long RssBytes => long.Parse(File.ReadAllLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:"))
        .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);

    /// <summary>Sends SIGTERM, as an orchestrator stopping the container does.</summary>
    public void Terminate()
    {
        if (kill(_process.Id, 15) != 0) throw new InvalidOperationException($"kill failed: errno {System.Runtime.InteropServices.Marshal.GetLastWin32Error()}");
    }

    /// <summary>Waits for the process to end (and its output to be read); false on timeout.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); return true; }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>Starts the host with the given extra arguments; does not wait for the models.</summary>
    public static ServerProcess Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    /// <summary>The same with extra environment variables.</summary>
    public static ServerProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        int grpcPort = FreePort(), httpPort = FreePort(), apiPort = FreePort();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(HostAssembly());
        foreach (var a in new[] { "--grpc-port", grpcPort.ToString(), "--http-port", httpPort.ToString(), "--http-api-port", apiPort.ToString(),
            "--log-format", "json", "--device", "cpu", "--threads", "1" }.Concat(args))
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        foreach (var (key, value) in environment) psi.Environment[key] = value;
        // Several servers and the test process share two cores: idle OpenMP workers should sleep, not spin.
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        var process = Process.Start(psi)!;
        var server = new ServerProcess(process, grpcPort, httpPort, apiPort);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    /// <summary>Starts the host and waits until the scorer reports SERVING.</summary>
    public static async Task<ServerProcess> StartServingAsync(params string[] args)
    {
        var server = Start(args);
        if (!await server.Channel.WaitUntilServingAsync(TimeSpan.FromSeconds(120)))
        {
            string output = server.Output;
            await server.DisposeAsync();
            throw new InvalidOperationException($"the server did not become SERVING; its output:\n{output}");
        }
        return server;
    }

    void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A loopback port that was free a moment ago and that this process never handed out before: the OS may give a port just
    /// closed out again at once, and a server given the same port twice fails to start.
    /// </summary>
    public static int FreePort()
    {
        lock (HandedOut)
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                int port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (HandedOut.Add(port)) return port;
            }
    }

    static string HostAssembly() => BuiltAssembly("QService.Host", "QService.Host.dll");

    /// <summary>src/&lt;project&gt;/bin/&lt;same configuration as the tests&gt;/net10.0/&lt;dll&gt;, built before the tests by a project reference.</summary>
    public static string BuiltAssembly(string project, string dllName)
    {
        var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string framework = testBin.Name, configuration = testBin.Parent!.Name;
        string dll = Path.Combine(Fixtures.RepoRoot, "src", project, "bin", configuration, framework, dllName);
        if (!File.Exists(dll)) throw new FileNotFoundException($"{project} is not built: {dll}");
        return dll;
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
