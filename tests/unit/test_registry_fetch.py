"""What a pull's registry client costs: a blob's pieces reach the sink as httpx hands
them over (gathering them into 1 MiB copied every byte twice more, through memory
too big for the cache), and the client does not bring httpx's command-line client
into the process (~30 ms of every pull's start-up)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading

import httpx
import pytest

from dockyard.registry.client import BODY_READ, RegistryClient
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


def test_the_pull_path_imports_neither_httpxs_cli_nor_yaml_nor_h2() -> None:
    """(A missing registries.d needs no YAML parser either; httpcore's HTTP/2, which the
    client never asks for, is stood in for.)  And h2 is still there for whoever needs it
    in the same process (kube's gRPC probes)."""
    code = ("from pathlib import Path\n"
            "import dockyard.registry.transfer\n"
            "from dockyard.registry.trust import lookaside\n"
            "import httpx\n"
            "httpx.Client().close()\n"
            "lookaside.RegistriesD.load(Path('/nonexistent'))\n")
    assert loaded_after(code, ("rich", "pygments", "yaml", "h2")) == []
    assert loaded_after(code + "import h2.connection\n", ("h2",)) == ["h2"]


def test_a_blob_is_read_from_the_socket_in_large_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore's 64 KiB body reads cost a pull ~20% of its download (each read is ~50 us
    of Python with the GIL held): the client reads :data:`BODY_READ` at a time, over a
    real socket from a real server, through httpcore's own knob."""
    import httpcore._backends.sync as sync_backend

    data = os.urandom(2 << 20)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    asked: list[int] = []
    real_read = sync_backend.SyncStream.read

    def counted(self: sync_backend.SyncStream, max_bytes: int,
                timeout: float | None = None) -> bytes:
        asked.append(max_bytes)
        return real_read(self, max_bytes, timeout)

    monkeypatch.setattr(sync_backend.SyncStream, "read", counted)

    class Blob(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blob)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = RegistryClient(f"127.0.0.1:{server.server_address[1]}")
    got: list[bytes] = []
    try:
        assert client.fetch_blob("team/box", digest, 0, got.append)
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join()
    assert b"".join(got) == data
    assert asked and set(asked) == {BODY_READ} and BODY_READ == 256 << 10
