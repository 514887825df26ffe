// True when this is Linux and the system libstdc++.so.6 has no version node named VersionName.
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class SystemLacksSymbolVersion : Task
{
    [Required] public string VersionName { get; set; } = "";
    [Output] public bool Lacks { get; set; }

    static readonly string[] Candidates =
    {
        "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib64/libstdc++.so.6",
    };

    public override bool Execute()
    {
        Lacks = false;
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return true;
        foreach (string path in Candidates)
        {
            if (!File.Exists(path)) continue;
            // The version name is stored as a plain string in the library's .dynstr section.
            byte[] needle = Encoding.ASCII.GetBytes(VersionName + "\0");
            Lacks = IndexOf(File.ReadAllBytes(path), needle) < 0;
            Log.LogMessage(MessageImportance.Low, $"{path}: {(Lacks ? "lacks" : "has")} {VersionName}");
            return true;
        }
        Log.LogMessage(MessageImportance.Low, "no system libstdc++.so.6 found; nothing to patch");
        return true;
    }

    static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            if (hay[i] != needle[0]) continue;
            int j = 1;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }
}
