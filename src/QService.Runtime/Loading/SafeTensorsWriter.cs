using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace QService.Runtime.Loading;

/// <summary>Writes tensors as a .safetensors file (used by the demo trainer, the default-model builder and tests).</summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IDictionary<string, string>? metadata = null)
    {
        var list = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata != null) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in list)
        {
            long n = t.NumberOfElements * t.ElementSize;
            header[name] = new { dtype = DTypeName(t.dtype), shape = t.shape, data_offsets = new[] { offset, offset + n } };
            offset += n;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8; // the format pads the header with spaces to 8-byte alignment
        var headerBytes = new byte[padded];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < padded; i++) headerBytes[i] = (byte)' ';

        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)padded));
        fs.Write(headerBytes);
        foreach (var (_, t) in list)
        {
            using var scope = NewDisposeScope(); // detach/cpu/contiguous may each make a tensor
            fs.Write(t.detach().cpu().contiguous().bytes);
        }
    }

    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {t} cannot be stored in safetensors"),
    };
}
