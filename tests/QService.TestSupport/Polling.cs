namespace QService.TestSupport;

/// <summary>Waiting, boundedly, for something a real process does in its own time (a port answering, a file appearing).</summary>
public static class Polling
{
    /// <summary>Polls every 100 ms until <paramref name="done"/> holds; throws with <paramref name="what"/> when it never does within the time.</summary>
    public static async Task Until(Func<Task<bool>> done, TimeSpan within, Func<string> what)
    {
        for (var deadline = DateTime.UtcNow + within; DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            try
            {
                if (await done()) return;
            }
            catch (HttpRequestException) { } // not listening yet
        }
        throw new TimeoutException(what());
    }

    /// <summary>Until GET <paramref name="path"/> on the server's management port succeeds.</summary>
    public static Task UntilHttpOk(ServerProcess server, string path) =>
        Until(async () => (await server.Http.GetAsync(path)).IsSuccessStatusCode, TimeSpan.FromSeconds(60),
            () => $"{path} never answered; server output:\n{server.Output}");
}
