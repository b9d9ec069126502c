"""What a pull's registry client costs: a blob's pieces reach the sink as httpx hands
them over (gathering them into 1 MiB copied every byte twice more, through memory
too big for the cache), and the client does not bring httpx's command-line client
into the process (~30 ms of every pull's start-up)."""

from __future__ import annotations

import hashlib
import os

import httpx

from dockyard.registry.client import RegistryClient
from dockyard.testing.imports import loaded_after

PIECE = 16 << 10


def test_a_blobs_pieces_reach_the_sink_as_they_arrive() -> None:
    data = os.urandom(3 << 20)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v2/team/box/blobs/{digest}"
        pieces = [data[i:i + PIECE] for i in range(0, len(data), PIECE)]
        return httpx.Response(200, content=iter(pieces),
                              headers={"Content-Length": str(len(data))})

    client = RegistryClient("127.0.0.1:5000", transport=httpx.MockTransport(handler))
    got: list[bytes] = []
    try:
        assert client.fetch_blob("team/box", digest, 0, got.append)
    finally:
        client.close()
    assert b"".join(got) == data
    assert max(len(piece) for piece in got) <= PIECE


def test_the_pull_path_imports_neither_httpxs_cli_nor_yaml() -> None:
    """(A missing registries.d needs no YAML parser either.)  And HTTP/2 is still
    there for whoever needs it in the same process (kube's gRPC probes)."""
    code = ("from pathlib import Path\n"
            "import dockyard.registry.transfer\n"
            "from dockyard.registry.trust import lookaside\n"
            "import httpx\n"
            "httpx.Client().close()\n"
            "lookaside.RegistriesD.load(Path('/nonexistent'))\n")
    assert loaded_after(code, ("rich", "pygments", "yaml")) == []
    assert loaded_after(code + "import h2.connection\n", ("h2",)) == ["h2"]
