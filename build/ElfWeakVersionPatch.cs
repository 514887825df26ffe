// Marks one required symbol version of an ELF64 shared library as weak (VER_FLG_WEAK) so that the
// dynamic loader accepts a system libstdc++ that lacks it. Used by TorchSharp.Debian12.targets for
// TorchSharp's libLibTorchSharp.so, which asks for GLIBCXX_3.4.32 (GCC 13) but never resolves the only
// symbol of that version (std::ios_base_library_init). See README "TorchSharp on Debian 12".
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class ElfWeakVersionPatch : Task
{
    /// <summary>The library to patch in place (a copy in the build output, never the NuGet cache).</summary>
    [Required] public string Library { get; set; } = "";
    /// <summary>The version node to make weak, e.g. GLIBCXX_3.4.32.</summary>
    [Required] public string VersionName { get; set; } = "";

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    public override bool Execute()
    {
        if (!File.Exists(Library)) { Log.LogError($"ElfWeakVersionPatch: {Library} not found"); return false; }
        byte[] elf = File.ReadAllBytes(Library);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2)
        {
            Log.LogError($"ElfWeakVersionPatch: {Library} is not an ELF64 file");
            return false;
        }
        ulong shoff = BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;
            int secOff = checked((int)BitConverter.ToUInt64(elf, sh + 0x18));
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int strOff = checked((int)BitConverter.ToUInt64(elf, (int)shoff + link * shentsize + 0x18));
            int need = secOff;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(elf, need + 2);
                int aux = need + (int)BitConverter.ToUInt32(elf, need + 8);
                for (int a = 0; a < cnt; a++)
                {
                    string name = ReadCString(elf, strOff + (int)BitConverter.ToUInt32(elf, aux + 8));
                    if (name == VersionName)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, aux + 4);
                        if ((flags & VerFlgWeak) != 0) { Log.LogMessage(MessageImportance.Low, $"{Library}: {VersionName} already weak"); return true; }
                        BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, aux + 4);
                        File.WriteAllBytes(Library, elf);
                        Log.LogMessage(MessageImportance.High, $"Patched {Path.GetFileName(Library)}: {VersionName} marked weak (system libstdc++ lacks it)");
                        return true;
                    }
                    uint nextAux = BitConverter.ToUInt32(elf, aux + 12);
                    if (nextAux == 0) break;
                    aux += (int)nextAux;
                }
                uint next = BitConverter.ToUInt32(elf, need + 12);
                if (next == 0) break;
                need += (int)next;
            }
        }
        Log.LogMessage(MessageImportance.Low, $"{Library} does not require {VersionName}; nothing to patch");
        return true;
    }

    static string ReadCString(byte[] b, int at)
    {
        int end = at;
        while (b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, at, end - at);
    }
}
