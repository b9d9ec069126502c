"""References, digests, manifests, chain IDs: the pure OCI layer."""

from __future__ import annotations

import json

import pytest

from dockyard.errors import DigestMismatch, InvalidArgument
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.digest import Digest, verify
from dockyard.oci.image import Index, Manifest, parse_config, parse_manifest_or_index
from dockyard.snapshots.overlay import chain_ids

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


@pytest.mark.parametrize(("text", "full"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
    ("quay.io/org/app@" + D1, "quay.io/org/app@" + D1),
    ("localhost/app", "localhost/app:latest"),
])
def test_reference_normalisation(text: str, full: str) -> None:
    assert str(reference.parse(text)) == full


def test_familiar_names() -> None:
    assert reference.parse("busybox").familiar == "busybox"
    assert reference.parse("user/app").familiar == "user/app"
    assert reference.parse("localhost:5000/app").familiar == "localhost:5000/app"


@pytest.mark.parametrize("bad", ["", "UPPER", "a:b:c", "app@sha256:zz", "-x", "a//b",
                                 "app:" + "t" * 200])
def test_bad_references(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        reference.parse(bad)


def test_digest_parse_and_verify() -> None:
    digest = Digest.of(b"hello")
    assert str(digest) == ("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b"
                           "9824")
    verify(b"hello", digest)
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        verify(b"hellO", digest)
    with pytest.raises(InvalidArgument, match="invalid digest"):
        Digest.parse("md5:abc")


def _manifest(layer_type: str = mt.OCI_LAYER_GZIP) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                       "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
                       "layers": [{"mediaType": layer_type, "digest": D2, "size": 20}]}).encode()


def test_manifest_and_index_parse() -> None:
    manifest = parse_manifest_or_index(_manifest())
    assert isinstance(manifest, Manifest)
    assert manifest.layers[0].digest == D2
    index = parse_manifest_or_index(json.dumps({
        "schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": mt.DOCKER_MANIFEST, "digest": D1, "size": 5,
                       "platform": {"os": "linux", "architecture": "amd64"}}]}).encode())
    assert isinstance(index, Index)


def test_unknown_media_types_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown layer media type"):
        parse_manifest_or_index(_manifest("application/x-weird"))
    with pytest.raises(InvalidArgument, match="unknown manifest media type"):
        parse_manifest_or_index(json.dumps({"mediaType": "text/plain"}).encode())
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        parse_manifest_or_index(b"{nope")


def test_config_needs_diff_ids() -> None:
    with pytest.raises(InvalidArgument, match="rootfs.diff_ids"):
        parse_config(b'{"architecture": "amd64"}')


def test_chain_ids() -> None:
    ids = chain_ids([D1, D2])
    assert ids[0] == D1
    import hashlib

    assert ids[1] == "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
