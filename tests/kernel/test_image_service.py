"""The image service end to end on a real root: compressed layers unpacked and mounted,
prune and disk usage, import from a URL served on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from dockyard.engine.engine import Engine
from dockyard.oci import mediatypes as mt
from dockyard.snapshots.mount import mount_all, unmount
from dockyard.store.layout import Layout

pytestmark = pytest.mark.root


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _oci_archive(layers: list[tuple[bytes, bytes, str]]) -> bytes:
    """An OCI archive whose layers are (uncompressed, stored bytes, media type)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [_sha(plain) for plain, _, _ in layers]},
        "config": {"Cmd": ["sh"]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": _sha(config),
                                      "size": len(config)},
                           "layers": [{"mediaType": kind, "digest": _sha(stored),
                                       "size": len(stored)} for _, stored, kind in layers]
                           }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": mt.OCI_MANIFEST, "digest": _sha(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": "docker.io/library/mixed:1"}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for blob in (config, manifest, *[stored for _, stored, _ in layers]):
        files[f"blobs/sha256/{_sha(blob)[7:]}"] = blob
    return _tar(files)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(Layout.for_root(tmp_path / "root"))


def test_gzip_and_zstd_layers_unpack_and_mount(engine: Engine, tmp_path: Path) -> None:
    first = _tar({"etc/from-gzip": b"gzip layer\n"})
    second = _tar({"etc/from-zstd": b"zstd layer\n"})
    archive = _oci_archive([(first, gzip.compress(first), mt.OCI_LAYER_GZIP),
                            (second, zstandard.ZstdCompressor().compress(second),
                             mt.OCI_LAYER_ZSTD)])
    assert engine.images.load(io.BytesIO(archive)) == ["docker.io/library/mixed:1"]
    record = engine.images.get("mixed:1")
    top = engine.images.unpack(record)
    mounts = engine.images.snapshotter.prepare("probe", top)
    target = tmp_path / "mnt"
    target.mkdir()
    mount_all(mounts, str(target))
    try:
        assert (target / "etc/from-gzip").read_text() == "gzip layer\n"
        assert (target / "etc/from-zstd").read_text() == "zstd layer\n"
    finally:
        unmount(str(target))
        engine.images.snapshotter.remove("probe")
    assert engine.images.unpack(record) == top  # second time: nothing to do


def test_prune_and_disk_usage(engine: Engine) -> None:
    layer = _tar({"a": b"x" * 1000})
    engine.images.import_rootfs(io.BytesIO(layer), "keep:1")
    dangling = engine.images.import_rootfs(io.BytesIO(_tar({"b": b"y" * 1000})), None)
    usage = engine.images.disk_usage()
    assert usage["Images"] == 2 and usage["BlobBytes"] > 2000
    deleted, freed = engine.images.prune()
    assert deleted == [dangling] and freed > 1000
    assert [r.config_digest for r in engine.images.index.images()] != [dangling]
    assert engine.images.check() == []
    deleted, _ = engine.images.prune(all_images=True)
    assert len(deleted) == 1
    assert list(engine.images.content.walk()) == []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "rootfs.tar").write_bytes(_tar({"hello": b"from http\n"}))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)  # type: ignore

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rootfs.tar"
    server.shutdown()
    server.server_close()
    thread.join()


def test_import_from_url(served: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    cli = Path(sys.executable).with_name("dockyard")
    result = subprocess.run([str(cli), "--root", str(tmp_path / "r"), "import", served,
                             "web:1"], capture_output=True, text=True, check=False,
                            env=dict(os.environ, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sha256:")
