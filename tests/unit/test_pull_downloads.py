"""A pull downloads at most three layers at once (Docker's max-concurrent-downloads
default), and does download three at once: with six, the threads that each inflate,
hash and write a layer contended for the cores and the GIL (bench/pull_push.py, README).
Served by a real HTTP server on 127.0.0.1 that counts the blob downloads open at once."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

from dockyard.images.content import LocalContentStore
from dockyard.images.index import ImageIndex
from dockyard.oci import mediatypes as mt
from dockyard.registry.transfer import DOWNLOADS, pull
from dockyard.store.db import Database

LAYERS = 6


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _layer(index: int) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        data = f"layer {index}\n".encode()
        info = tarfile.TarInfo(f"file-{index}")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    tar = buffer.getvalue()
    return gzip.compress(tar, mtime=0), _digest(tar)


class _Image:
    def __init__(self) -> None:
        layers = [_layer(i) for i in range(LAYERS)]
        self.blobs = {_digest(blob): blob for blob, _ in layers}
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers",
                                        "diff_ids": [d for _, d in layers]}}).encode()
        self.config_digest = _digest(config)
        self.blobs[self.config_digest] = config
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": self.config_digest,
                       "size": len(config)},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": _digest(blob),
                        "size": len(blob)} for blob, _ in layers]}).encode()
        self.open = 0
        self.most_open = 0
        self.changed = threading.Condition()


def _server(image: _Image) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: bytes, media_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Content-Digest", _digest(body))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if "/manifests/" in self.path:
                self._send(image.manifest, mt.OCI_MANIFEST)
                return
            digest = self.path.rsplit("/", 1)[1]
            layer = digest != image.config_digest
            if layer:
                with image.changed:
                    image.open += 1
                    image.most_open = max(image.most_open, image.open)
                    image.changed.notify_all()
                    # held until as many are open as may be (5 s at most), once: a
                    # pull that opens fewer takes 5 s and fails
                    image.changed.wait_for(lambda: image.most_open >= DOWNLOADS, timeout=5)
            try:
                self._send(image.blobs[digest], "application/octet-stream")
            finally:
                if layer:
                    with image.changed:
                        image.open -= 1

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def test_a_pull_downloads_three_layers_at_once(tmp_path: Path) -> None:
    image = _Image()
    server = _server(image)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    content = LocalContentStore(tmp_path / "content")
    database = Database(tmp_path / "metadata.db")
    try:
        ref = f"127.0.0.1:{server.server_address[1]}/team/box:1"
        digest = pull(content, ImageIndex(database), ref)
    finally:
        server.shutdown()
        server.server_close()
        serving.join()
        database.close()
    assert digest == _digest(image.manifest)
    assert DOWNLOADS == 3
    assert image.most_open == DOWNLOADS
    assert all(content.exists(d) for d in image.blobs)
