"""Starts the real server (the built QService.Host on the bundled demo pair) once for the session, on free ports.
Set QSERVICE_ADDRESS=host:port to test against a server that is already running instead. serve() starts others
(the several-policies tests start theirs on the HF reference pair; chat_address serves the demo pair with a chat template)."""
import contextlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from qservice_client import QServiceClient

REPO = pathlib.Path(__file__).resolve().parents[3]
HOST = REPO / "src" / "QService.Host" / "bin" / "Release" / "net10.0" / "QService.Host.dll"
# The JSON port of each server serve() started, by its gRPC address.
API_ADDRESSES = {}


# Ports handed out so far: the OS may give a port just closed out again at once, and a server given one port twice fails.
_HANDED_OUT = set()


def _free_port() -> int:
    """A loopback port that was free a moment ago and that this session never handed out before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@contextlib.contextmanager
def serve(*args: str):
    """The built host on free ports with these extra arguments, once ready; yields its gRPC address."""
    if not HOST.exists():
        pytest.fail(f"{HOST} is missing: build first (dotnet build QService.sln -c Release)")
    grpc_port, http_port, api_port = _free_port(), _free_port(), _free_port()
    server = subprocess.Popen(["dotnet", str(HOST), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
                               "--http-api-port", str(api_port), "--log-format", "json", "--device", "cpu", "--threads", "1", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                pytest.fail(f"the server ({' '.join(args) or 'the demo pair'}) did not become ready")
            time.sleep(0.2)
        API_ADDRESSES[f"127.0.0.1:{grpc_port}"] = f"127.0.0.1:{api_port}"
        yield f"127.0.0.1:{grpc_port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture(scope="session")
def address():
    if os.environ.get("QSERVICE_ADDRESS"):
        yield os.environ["QSERVICE_ADDRESS"]
        return
    with serve() as served:
        yield served


@pytest.fixture(scope="session")
def client(address):
    with QServiceClient(address) as c:
        yield c


# A compact chat template: a real one (ChatML's tags, a default system prompt) spends most of the demo pair's 128-token
# context on a single turn, and the evaluation tests need several. Opened by bos_token, as Llama's templates are.
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ message['role'] + ':' + message['content'] + '\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}")


@pytest.fixture(scope="session")
def chat_address(tmp_path_factory):
    """A server on a copy of the demo pair whose tokenizer has CHAT_TEMPLATE: the demo pair itself has none."""
    pair = tmp_path_factory.mktemp("chat-pair")
    for role in ("policy", "reference"):
        shutil.copytree(REPO / "models" / "demo" / role, pair / role)
    config_path = pair / "policy" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(config))
    with serve("--policy", str(pair / "policy"), "--reference", str(pair / "reference")) as served:
        yield served
