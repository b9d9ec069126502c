"""Every error a message, never a traceback: mutated archives and argument lists.

Deterministic fuzzing (a fixed seed, so a failure reproduces): valid docker-archives,
OCI archives and layer tars are mutated (bytes flipped, cut short, JSON replaced by
hostile values) and fed to the loaders; anything other than a ``DockyardError`` is a
bug.  After every case the store must still be readable and ``check`` clean.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.engine.engine import Engine
from dockyard.errors import DockyardError
from dockyard.store.layout import Layout
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root
SEED = 20261201


def _tar(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _layer() -> bytes:
    return _tar([("etc/hostname", b"fuzz\n"), ("bin/x", b"#!/bin/sh\n")])


def _config(layer: bytes) -> bytes:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()


def _docker_archive(manifest: object = None, config: bytes | None = None) -> bytes:
    layer = _layer()
    entries = manifest if manifest is not None else [
        {"Config": "c.json", "RepoTags": ["fuzz:1"], "Layers": ["l.tar"]}]
    return _tar([("c.json", config if config is not None else _config(layer)),
                 ("l.tar", layer), ("manifest.json", json.dumps(entries).encode())])


def _oci_archive(index: object = None, manifest: object = None) -> bytes:
    layer = _layer()
    config = _config(layer)

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    body = manifest if manifest is not None else {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer), "size": len(layer)}]}
    manifest_bytes = json.dumps(body).encode()
    top = index if index is not None else {
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest_bytes), "size": len(manifest_bytes),
            "annotations": {"org.opencontainers.image.ref.name": "fuzz:2"}}]}
    blobs = [(f"blobs/sha256/{digest(b)[7:]}", b) for b in (layer, config, manifest_bytes)]
    return _tar([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                 ("index.json", json.dumps(top).encode()), *blobs])


HOSTILE_VALUES: list[object] = [None, 0, -1, 2**70, "", "x", "sha256:", "sha256:zz",
                                "a" * 64, [], ["x"], {}, {"digest": 5}, [[[[[]]]]],
                                "../../etc/passwd", {"size": "1"}, True]


def _docker_entry(value: object) -> bytes:
    return _docker_archive([{"Config": value, "Layers": value}])


def _docker_config(value: object) -> bytes:
    return _docker_archive(config=json.dumps({"rootfs": {"diff_ids": value}}).encode())


def _oci_index(value: object) -> bytes:
    return _oci_archive(index={"manifests": value})


def _oci_entry(value: object) -> bytes:
    return _oci_archive(index={"manifests": [value]})


def _oci_manifest(value: object) -> bytes:
    return _oci_archive(manifest={"layers": value, "config": value})


def _flipped(base: bytes, rng: random.Random) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data[:rng.choice([len(data), rng.randrange(len(data))])])


def _mutations(rng: random.Random) -> list[tuple[str, Callable[[], bytes]]]:
    cases: list[tuple[str, Callable[[], bytes]]] = []
    makers: list[Callable[[object], bytes]] = [_docker_archive, _docker_entry, _docker_config,
                                               _oci_index, _oci_entry, _oci_manifest]
    for value in HOSTILE_VALUES:
        for maker in makers:
            cases.append((f"{maker.__name__} {value!r:.20}", functools.partial(maker, value)))
    for base_name, base in (("docker", _docker_archive()), ("oci", _oci_archive())):
        for i in range(40):
            cases.append((f"{base_name} flipped {i}",
                          functools.partial(lambda data: data, _flipped(base, rng))))
    cases.append(("random bytes", functools.partial(rng.randbytes, 5000)))
    cases.append(("empty", functools.partial(bytes)))
    return cases


def test_archive_loaders_answer_every_mutation_with_a_clear_error(tmp_path: Path) -> None:
    engine = Engine(Layout.for_root(tmp_path / "root"))
    rng = random.Random(SEED)
    loaders: list[tuple[str, Callable[[io.BytesIO], object]]] = [
        ("load", engine.images.load),
        ("import", lambda stream: engine.images.import_rootfs(stream, None))]
    for name, make in _mutations(rng):
        data = make()
        for how, load in loaders:
            try:
                load(io.BytesIO(data))
            except DockyardError:
                pass
            except Exception as exc:  # a bug: the internal-error path
                raise AssertionError(f"{name} via {how}: {exc!r}") from exc
    assert [p for p in engine.images.check() if "interrupted" not in p] == []


def test_cli_argument_fuzz_never_reaches_the_internal_error_path(box: Dockyard) -> None:
    """Odd flag values for the commands users type most: exit codes 1 or 125 with one
    ``Error:`` line, never 2 (dockyard's code for a bug) or a traceback."""
    cases = [
        ["run", "--cpus", "abc", "box:1"], ["run", "--memory", "12q", "box:1"],
        ["run", "-p", "99999:1", "box:1"], ["run", "-p", "a:b:c:d", "box:1"],
        ["run", "-v", "/x:/m:zz", "box:1"],
        ["run", "-v", "a" * 300 + ":/m", "box:1"], ["run", "--ulimit", "nofile=x", "box:1"],
        ["run", "--name", "bad/name", "box:1"], ["run", "-e", "=x", "box:1", "true"],
        ["run", "--restart", "sometimes", "box:1"], ["run", "--network", "nope", "box:1"],
        ["run", "--stop-signal", "SIGNOPE", "box:1"],
        ["run", "box:1", ""], ["run", "UPPER:1"], ["run", "x" * 300], ["pull", "@@@"],
        ["volume", "create", "a" * 300], ["volume", "create", "../x"],
        ["network", "create", "--subnet", "300.1.1.0/24", "n1"], ["tag", "box:1", "BAD"],
        ["image", "inspect", "sha256:zz"], ["logs", "--tail", "x", "nope"],
        ["load", "-i", "/nonexistent"], ["import", "/nonexistent", "x:1"],
        ["cp", "nope:/a", "/tmp"], ["inspect", "--format", "{{", "box:1"],
    ]
    dangling = box.root.parent / "dangling"
    dangling.symlink_to(box.root.parent / "nowhere" / "deeper")
    cases.append(["run", "-v", f"{dangling}:/m", "box:1", "true"])
    bugs = []
    for argv in cases:
        result = box(*argv, check=False)
        if result.returncode in (0, 2) or "Traceback" in result.stderr or \
                "Error" not in result.stderr:
            bugs.append((argv[:3], result.returncode, result.stderr.strip()[-160:]))
    assert bugs == []
