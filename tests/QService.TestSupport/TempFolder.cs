namespace QService.TestSupport;

/// <summary>A fresh temporary folder, deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("qservice-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Copies every file of a fixture folder (not recursively) into this folder.</summary>
    public TempFolder WithFilesFrom(string folder, params string[] except)
    {
        foreach (var f in Directory.GetFiles(folder))
            if (!except.Contains(System.IO.Path.GetFileName(f)))
                System.IO.File.Copy(f, File(System.IO.Path.GetFileName(f)));
        return this;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
