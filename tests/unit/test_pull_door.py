"""A pull checks each layer at the door as its bytes arrive, in the thread that
downloads it (no second pass over the stored blob, nothing left to check after the
last byte), and still tells apart what the layer did wrong, what its digest says and
what the download did wrong."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from dockyard.errors import DigestMismatch, InvalidArgument, Unavailable
from dockyard.images import door
from dockyard.images.content import LocalContentStore
from dockyard.oci import mediatypes as mt
from dockyard.oci.image import Descriptor
from dockyard.registry.client import RegistryClient
from dockyard.registry.transfer import NoProgress, _fetch_blob

PIECE = 16 << 10


def _layer(name: str = "data/file", size: int = 1 << 20) -> tuple[bytes, str]:
    """A gzip layer of one file of random bytes, and its diff_id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        data = os.urandom(size)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    tar = buffer.getvalue()
    return gzip.compress(tar, mtime=0), f"sha256:{hashlib.sha256(tar).hexdigest()}"


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Registry:
    """Serves ``blob`` (under ``digest``) in pieces, honouring Range; counts the pieces
    served; ``fail_after`` pieces it breaks the connection."""

    def __init__(self, blob: bytes, digest: str, fail_after: int | None = None) -> None:
        self.blob, self.digest, self.fail_after = blob, digest, fail_after
        self.served = 0
        self.ranges: list[str | None] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v2/team/box/blobs/{self.digest}"
        asked = request.headers.get("range")
        self.ranges.append(asked)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0

        def pieces() -> Iterator[bytes]:
            for at in range(start, len(self.blob), PIECE):
                if self.fail_after is not None and self.served >= self.fail_after:
                    raise httpx.ReadError("connection reset by peer")
                self.served += 1
                yield self.blob[at:at + PIECE]

        return httpx.Response(206 if start else 200, content=pieces(),
                              headers={"Content-Length": str(len(self.blob) - start)})

    def client(self) -> RegistryClient:
        return RegistryClient("127.0.0.1:5000", transport=httpx.MockTransport(self.handler))


def _fetch(tmp_path: Path, registry: Registry, desc: Descriptor, diff_id: str,
           reads: list[int] | None = None) -> tuple[LocalContentStore, bool]:
    """``_fetch_blob`` as a pull calls it for a layer; ``reads``: the pieces served
    when the check read each time."""
    content = LocalContentStore(tmp_path / "content")

    class Spy:
        def __init__(self, raw: IO[bytes]) -> None:
            self.raw = raw

        def read(self, size: int = -1) -> bytes:
            data = self.raw.read(size)
            if reads is not None:
                reads.append(registry.served)
            return data

    def check(raw: IO[bytes]) -> str:
        return door.verify_stream(Spy(raw), desc.digest, desc.media_type,  # type: ignore[arg-type]
                                  diff_id)

    client = registry.client()
    try:
        return content, _fetch_blob(client, content, "team/box", desc, NoProgress(), check)
    finally:
        client.close()


def _stored(content: LocalContentStore) -> list[str]:
    return sorted(p.name for p in content.blobs.rglob("*") if p.is_file())


def test_a_layer_is_checked_as_its_pieces_arrive(tmp_path: Path) -> None:
    blob, diff_id = _layer()
    registry = Registry(blob, _digest(blob))
    reads: list[int] = []
    content, checked = _fetch(tmp_path, registry, Descriptor(mt.OCI_LAYER_GZIP,
                              registry.digest, len(blob)), diff_id, reads)
    assert checked
    assert content.read(registry.digest) == blob
    total = -(-len(blob) // PIECE)
    assert registry.served == total
    # the check read the first piece as it came, not the blob once it was all in
    assert reads[0] == 1
    assert len(reads) >= total


def test_a_refused_layer_is_refused_once_its_digest_is_verified(tmp_path: Path) -> None:
    """The door's words on the layer; the whole blob was taken (and stored, for the
    pull to discard with the rest of what it brought), as when the check came after."""
    blob, diff_id = _layer("../escape")
    registry = Registry(blob, _digest(blob))
    content = LocalContentStore(tmp_path / "content")
    with pytest.raises(InvalidArgument, match="'../escape' has a '..' component"):
        _fetch(tmp_path, registry, Descriptor(mt.OCI_LAYER_GZIP, registry.digest,
                                              len(blob)), diff_id)
    assert registry.served == -(-len(blob) // PIECE)
    assert _stored(content) == [registry.digest[7:]]


def test_a_wrong_diff_id_is_refused(tmp_path: Path) -> None:
    blob, _diff_id = _layer()
    registry = Registry(blob, _digest(blob))
    with pytest.raises(DigestMismatch, match="but the image config says sha256:0"):
        _fetch(tmp_path, registry, Descriptor(mt.OCI_LAYER_GZIP, registry.digest,
                                              len(blob)), "sha256:" + "0" * 64)


def test_a_blob_that_is_not_its_digest_is_told_so_before_the_doors_verdict(
        tmp_path: Path) -> None:
    hostile, diff_id = _layer("../escape")
    named = os.urandom(len(hostile))  # what the manifest names, as long as what comes
    registry = Registry(hostile, _digest(named))
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        _fetch(tmp_path, registry, Descriptor(mt.OCI_LAYER_GZIP, registry.digest,
                                              len(hostile)), diff_id)
    content = LocalContentStore(tmp_path / "content")
    assert _stored(content) == []
    assert list(content.ingest_dir.iterdir()) == []


def test_a_broken_download_is_not_the_layers_fault_and_resumes(tmp_path: Path) -> None:
    """The transfer's error (not a refusal of the layer, nor a size mismatch), and the
    partial download kept; the next pull asks for the rest and checks the stored blob."""
    blob, diff_id = _layer()
    registry = Registry(blob, _digest(blob), fail_after=10)
    desc = Descriptor(mt.OCI_LAYER_GZIP, registry.digest, len(blob))
    with pytest.raises(Unavailable, match="connection reset by peer"):
        _fetch(tmp_path, registry, desc, diff_id)
    content = LocalContentStore(tmp_path / "content")
    assert _stored(content) == []
    [partial] = content.ingest_dir.iterdir()
    assert partial.read_bytes() == blob[:10 * PIECE]
    registry.fail_after = None
    reads: list[int] = []
    content, checked = _fetch(tmp_path, registry, desc, diff_id, reads)
    assert not checked and reads == []  # (the pull checks the stored blob)
    assert registry.ranges[-1] == f"bytes={10 * PIECE}-"
    assert door.verify_layer(content, desc.digest, desc.media_type, diff_id) == diff_id


def test_a_blob_already_here_is_not_fetched(tmp_path: Path) -> None:
    blob, diff_id = _layer(size=1000)
    registry = Registry(blob, _digest(blob))
    LocalContentStore(tmp_path / "content").write(blob)
    _content, checked = _fetch(tmp_path, registry, Descriptor(
        mt.OCI_LAYER_GZIP, registry.digest, len(blob)), diff_id)
    assert not checked and registry.ranges == []


