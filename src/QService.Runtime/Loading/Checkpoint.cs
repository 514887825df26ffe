using System.Text.Json;
using static TorchSharp.torch;

namespace QService.Runtime.Loading;

/// <summary>
/// The weights of a HuggingFace model folder: either one <c>model.safetensors</c> or shards listed in
/// <c>model.safetensors.index.json</c> (<c>weight_map</c>: tensor name → shard file).
/// </summary>
public sealed class Checkpoint
{
    public string Folder { get; }
    readonly Dictionary<string, SafeTensorsFile> _fileOf;

    Checkpoint(string folder, Dictionary<string, SafeTensorsFile> fileOf)
    {
        Folder = folder;
        _fileOf = fileOf;
    }

    public IEnumerable<string> Names => _fileOf.Keys;

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    public SafeTensorInfo Info(string name) => File(name).Tensors[name];

    public static Checkpoint Open(string folder)
    {
        string index = Path.Combine(folder, "model.safetensors.index.json");
        string single = Path.Combine(folder, "model.safetensors");
        var fileOf = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        if (System.IO.File.Exists(index))
        {
            Dictionary<string, string> weightMap;
            try
            {
                using var doc = JsonDocument.Parse(System.IO.File.ReadAllBytes(index));
                weightMap = doc.RootElement.GetProperty("weight_map").EnumerateObject()
                    .ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new CheckpointException($"{index}: not a valid safetensors index ({e.Message})", e);
            }
            var shards = new Dictionary<string, SafeTensorsFile>();
            foreach (var (name, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    string shardPath = Path.Combine(folder, shardName);
                    if (!System.IO.File.Exists(shardPath))
                        throw new CheckpointException($"{index}: shard '{shardName}' (holding '{name}') is missing from {folder}");
                    shards[shardName] = shard = SafeTensorsFile.Open(shardPath);
                }
                if (!shard.Tensors.ContainsKey(name))
                    throw new CheckpointException($"{shard.Path}: the index says it holds '{name}', but it does not");
                fileOf[name] = shard;
            }
        }
        else if (System.IO.File.Exists(single))
        {
            var file = SafeTensorsFile.Open(single);
            foreach (var name in file.Tensors.Keys) fileOf[name] = file;
        }
        else
        {
            throw new CheckpointException($"{folder}: no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are supported)");
        }
        return new Checkpoint(folder, fileOf);
    }

    /// <summary>Bytes of all tensors in the checkpoint.</summary>
    public long TotalBytes => _totalBytes ??= _fileOf.Select(f => f.Value.Tensors[f.Key]).Sum(t => t.End - t.Begin);
    long? _totalBytes;

    /// <summary>Bytes of the tensors read so far.</summary>
    public long BytesRead { get; private set; }

    /// <summary>Called after each tensor read with (BytesRead, TotalBytes): loading a large checkpoint shows its progress.</summary>
    public Action<long, long>? Progress { get; set; }

    /// <summary>Reads a tensor, checks its shape, and converts it to <paramref name="dtype"/>.</summary>
    public Tensor Read(string name, long[] expectedShape, ScalarType dtype)
    {
        var file = File(name);
        var info = file.Tensors[name];
        BytesRead += info.End - info.Begin;
        Progress?.Invoke(BytesRead, TotalBytes);
        if (!info.Shape.SequenceEqual(expectedShape))
            throw new CheckpointException($"{file.Path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], " +
                $"the model config expects [{string.Join(", ", expectedShape)}]");
        var stored = file.Read(name);
        if (stored.dtype == dtype) return stored;
        using (stored) return stored.to(dtype);
    }

    SafeTensorsFile File(string name) =>
        _fileOf.TryGetValue(name, out var f) ? f : throw new CheckpointException($"{Folder}: the checkpoint has no tensor '{name}'");
}
