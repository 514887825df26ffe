"""Regenerates qservice_client/qservice.desc, the compiled descriptor of protos/qservice/v1/qservice.proto.

    python3 clients/python/generate.py      (after `dotnet build`: it uses the protoc of the Grpc.Tools NuGet package)

The client builds its message classes from this descriptor at import time, so it needs no generated code and
works with the protobuf runtime Debian ships (3.21/4.21), which cannot load code from a newer protoc. The
HTTP-route annotations (google.api.http) are dropped first: only the server's JSON API uses them.
"""
import glob
import os
import pathlib
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "protos" / "qservice" / "v1" / "qservice.proto"
DESCRIPTOR = HERE / "qservice_client" / "qservice.desc"


def protoc() -> str:
    found = sorted(glob.glob(os.path.expanduser("~/.nuget/packages/grpc.tools/*/tools/linux_x64/protoc")))
    if not found:
        sys.exit("generate.py: no protoc in ~/.nuget/packages/grpc.tools; run `dotnet build` first")
    return found[-1]


def generate(out: pathlib.Path = DESCRIPTOR) -> bytes:
    text = PROTO.read_text()
    text = re.sub(r'import "google/api/annotations\.proto";\n', "", text)
    text = re.sub(r"\) \{\n\s+option \(google\.api\.http\) = \{[^}]*\};\n\s+\}", ");", text)
    if "google.api" in text:
        sys.exit("generate.py: an http annotation was not stripped; update the pattern")
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "qservice" / "v1"
        folder.mkdir(parents=True)
        (folder / "qservice.proto").write_text(text)
        subprocess.run([protoc(), f"-I{tmp}", f"--descriptor_set_out={out}", "qservice/v1/qservice.proto"], check=True)
    return out.read_bytes()


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DESCRIPTOR)
