using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace QService.Runtime.Loading;

/// <summary>Where one tensor's bytes are in a .safetensors file, as its header says.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// One .safetensors file: an 8-byte little-endian header length N, N bytes of JSON header, then the raw
/// little-endian tensor data. The header is read and checked against the file size when opened; tensor
/// data is read on demand straight from disk into the tensor's own native memory (no managed copy), so a
/// large checkpoint is streamed once.
/// </summary>
public sealed class SafeTensorsFile
{
    /// <summary>Refuse absurd headers before allocating for them (the format's own limit is 100 MB).</summary>
    const long MaxHeaderBytes = 100L * 1024 * 1024;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    readonly long _dataStart;

    SafeTensorsFile(string path, Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        Tensors = tensors;
        Metadata = metadata;
        _dataStart = dataStart;
    }

    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"{path}: file not found");
        using var fs = File.OpenRead(path);
        long fileLength = fs.Length;
        if (fileLength < 8) throw new CheckpointException($"{path}: truncated safetensors file ({fileLength} bytes, no header)");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        long headerLength = (long)BitConverter.ToUInt64(lenBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > fileLength)
            throw new CheckpointException($"{path}: corrupt or truncated safetensors file (header length {headerLength}, file has {fileLength} bytes)");
        var header = new byte[headerLength];
        fs.ReadExactly(header);

        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>();
        long dataStart = 8 + headerLength;
        long dataLength = fileLength - dataStart;
        try
        {
            using var doc = JsonDocument.Parse(header);
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    foreach (var m in entry.Value.EnumerateObject()) metadata[m.Name] = m.Value.ToString();
                    continue;
                }
                var info = ParseEntry(path, entry);
                if (info.End > dataLength)
                    throw new CheckpointException($"{path}: tensor '{info.Name}' ends at byte {info.End} of the data section, " +
                        $"but the file holds only {dataLength} data bytes (truncated file?)");
                tensors[info.Name] = info;
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: safetensors header is not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            throw new CheckpointException($"{path}: safetensors header has an unexpected layout ({e.Message})", e);
        }
        return new SafeTensorsFile(path, tensors, metadata, dataStart);
    }

    static SafeTensorInfo ParseEntry(string path, JsonProperty entry)
    {
        string dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
        long[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        long[] offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
            throw new CheckpointException($"{path}: tensor '{entry.Name}' has invalid data_offsets [{string.Join(", ", offsets)}]");
        if (shape.Any(d => d < 0))
            throw new CheckpointException($"{path}: tensor '{entry.Name}' has a negative dimension in shape [{string.Join(", ", shape)}]");
        var info = new SafeTensorInfo(entry.Name, dtype, shape, offsets[0], offsets[1]);
        long expected = checked(info.ElementCount * ElementSize(path, info));
        if (offsets[1] - offsets[0] != expected)
            throw new CheckpointException($"{path}: tensor '{entry.Name}' ({dtype}, shape [{string.Join(", ", shape)}]) " +
                $"needs {expected} bytes but its data_offsets span {offsets[1] - offsets[0]}");
        return info;
    }

    public static ScalarType ToScalarType(string path, SafeTensorInfo info) => info.DType switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new CheckpointException($"{path}: tensor '{info.Name}' has unsupported dtype '{info.DType}' (supported: F32, F16, BF16, F64, " +
            "I64, I32, I16, I8, U8, BOOL)"),
    };

    static long ElementSize(string path, SafeTensorInfo info) => ToScalarType(path, info) switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    /// <summary>
    /// Reads a tensor in its stored dtype into a new CPU tensor. The bytes go from the file straight into
    /// the tensor's native buffer, a slice of rows at a time (a Span is limited to 2 GB).
    /// </summary>
    public Tensor Read(string name)
    {
        if (!Tensors.TryGetValue(name, out var info)) throw new CheckpointException($"{Path}: no tensor named '{name}'");
        var result = empty(info.Shape, ToScalarType(Path, info), CPU);
        try
        {
            using var fs = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
            fs.Position = _dataStart + info.Begin;
            long total = info.End - info.Begin;
            if (total == 0) return result;
            using var flat = result.view(-1);
            long elementSize = total / info.ElementCount;
            long maxElements = (1L << 30) / elementSize;
            for (long done = 0; done < info.ElementCount; done += maxElements)
            {
                using var chunk = flat.narrow(0, done, Math.Min(maxElements, info.ElementCount - done));
                var span = chunk.bytes;
                if (ReadFully(fs, span) != span.Length)
                    throw new CheckpointException($"{Path}: tensor '{name}' is truncated (expected {total} bytes)");
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    static int ReadFully(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }
}
