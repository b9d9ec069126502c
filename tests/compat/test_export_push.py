"""The small things users notice (issue 11) that need a registry or dockerd: digests
listed per repository, push's output and gzip layers, export's entries."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.testing import dockerd
from dockyard.testing.cli import Dockyard
from dockyard.testing.dockerd import Daemon
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root

ACCEPT = "application/vnd.oci.image.manifest.v1+json, " \
    "application/vnd.docker.distribution.manifest.v2+json"


def test_images_digests_only_for_the_repository_pushed(dy: Dockyard, rootfs_tar: Path,
                                                      registry: Registry,
                                                      tmp_path: Path) -> None:
    name = f"{registry.address}/team/box"
    dy("import", str(rootfs_tar), "local:1")
    dy("tag", "local:1", f"{name}:v1")
    digest = dy("push", f"{name}:v1").stdout.strip().split("digest: ")[1].split()[0]
    listing = "{{.Repository}}:{{.Tag}} {{.Digest}}"
    rows = dy("images", "--digests", "--format", listing).stdout.splitlines()
    # a tag never pushed or pulled has no registry digest, whatever its image's other tags
    assert sorted(rows) == [f"{name}:v1 {digest}", "local:1 <none>"]
    table = dy("images", "--digests").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED",
                                "SIZE"]
    assert sorted(line.split()[2] for line in table[1:]) == ["<none>", digest]
    # an image known by digest only: a row for its repository, tag <none>
    other = tmp_path / "by-digest"
    dy("pull", f"{name}@{digest}", root=other)
    rows = dy("images", "--digests", "--format", listing, root=other).stdout.splitlines()
    assert rows == [f"{name}:<none> {digest}"]
    assert dy("images", "--format", "{{.Repository}} {{.Tag}}",
              root=other).stdout.splitlines() == [f"{name} <none>"]


def test_push_lists_layers_only(dy: Dockyard, rootfs_tar: Path, registry: Registry) -> None:
    name = f"{registry.address}/team/box"
    dy("import", str(rootfs_tar), f"{name}:v1")
    doc = json.loads(dy("image", "inspect", f"{name}:v1").stdout)[0]
    config_key = doc["Id"].split(":")[1][:12]
    layer_keys = [d.split(":")[1][:12] for d in doc["RootFS"]["Layers"]]  # diff IDs, as Docker
    lines = dy("push", f"{name}:v1").stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{name}]"
    assert lines[1:-1] == [f"{key}: Pushed" for key in layer_keys]
    assert not any(config_key in line for line in lines)
    size = len(httpx.get(f"http://{registry.address}/v2/team/box/manifests/v1",
                         headers={"Accept": ACCEPT}).content)
    assert re.fullmatch(rf"v1: digest: sha256:[0-9a-f]{{64}} size: {size}", lines[-1])
    # again: every layer is there; then in another repository of the same registry, by mount
    assert dy("push", f"{name}:v1").stdout.splitlines()[1:-1] == \
        [f"{key}: Layer already exists" for key in layer_keys]
    dy("tag", f"{name}:v1", f"{registry.address}/elsewhere/box:v1")
    lines = dy("push", f"{registry.address}/elsewhere/box:v1").stdout.splitlines()
    assert lines[1:-1] == [f"{key}: Mounted from team/box" for key in layer_keys]
    # -q: the reference alone, as docker push -q prints it
    assert dy("push", "-q", f"{name}:v1").stdout == f"{name}:v1\n"


def _manifest(registry: Registry, repository: str, ref: str) -> tuple[str, dict[str, Any]]:
    response = httpx.get(f"http://{registry.address}/v2/{repository}/manifests/{ref}",
                         headers={"Accept": ACCEPT})
    assert response.status_code == 200, response.text
    return response.headers["docker-content-digest"], response.json()


def _raw_manifest(registry: Registry, repository: str, ref: str) -> bytes:
    return httpx.get(f"http://{registry.address}/v2/{repository}/manifests/{ref}",
                     headers={"Accept": ACCEPT}).content


def _blob(registry: Registry, repository: str, digest: str) -> bytes:
    return httpx.get(f"http://{registry.address}/v2/{repository}/blobs/{digest}",
                     follow_redirects=True).content


def test_push_sends_gzip_layers_deterministically(dy: Dockyard, rootfs_tar: Path,
                                                  registry: Registry,
                                                  tmp_path: Path) -> None:
    name = f"{registry.address}/team/box"
    dy("import", str(rootfs_tar), f"{name}:v1")
    ours = json.loads(dy("image", "inspect", f"{name}:v1").stdout)[0]
    pushed = dy("push", f"{name}:v1").stdout.strip().split("digest: ")[1].split()[0]
    digest, manifest = _manifest(registry, "team/box", "v1")
    assert digest == pushed
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["digest"] == ours["Id"]  # the config, and so the ID, as it was
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    data = _blob(registry, "team/box", layer["digest"])
    assert len(data) == layer["size"] < rootfs_tar.stat().st_size * 0.7
    # a gzip stream with no name and mtime 0 (deterministic), of the layer's diff_id
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\0\0\0\0"
    plain = gzip.decompress(data)
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == ours["RootFS"]["Layers"][0]
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
    # pushed again, and from another root holding the same image (saved, loaded): the
    # same compressed bytes, so the same manifest digest
    line = f"v1: digest: {pushed} size: {len(_raw_manifest(registry, 'team/box', 'v1'))}"
    assert dy("push", f"{name}:v1").stdout.splitlines()[-1] == line
    archive = tmp_path / "box.tar"
    dy("save", "-o", str(archive), f"{name}:v1")
    other = tmp_path / "other"
    dy("load", "-i", str(archive), root=other)
    dy("tag", f"{name}:v1", f"{registry.address}/fresh/box:v1", root=other)
    again = dy("push", f"{registry.address}/fresh/box:v1", root=other).stdout
    assert again.splitlines()[-1] == line
    # pulled elsewhere: the same image ID, the layers as pushed, the store sound
    puller = tmp_path / "puller"
    dy("pull", f"{name}:v1", root=puller)
    theirs = json.loads(dy("image", "inspect", f"{name}:v1", root=puller).stdout)[0]
    assert theirs["Id"] == ours["Id"] and theirs["RepoDigests"] == [f"{name}@{pushed}"]
    assert dy("run", "--rm", "--network", "none", f"{name}:v1", "echo", "ran",
              root=puller).stdout == "ran\n"
    assert dy("system", "check", root=puller).returncode == 0
    # pulled where it was pushed from: the image already here, not a second one
    assert "Already exists" in dy("pull", f"{name}:v1").stdout
    assert dy("images", "-q").stdout.split() == [ours["Id"][7:19]]
    if shutil.which("skopeo") is not None:
        inspected = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{name}:v1"],
            capture_output=True, check=True, text=True).stdout)
        assert inspected["Digest"] == pushed and inspected["Layers"] == [layer["digest"]]


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A private dockerd (its own data root and bridge, no iptables), stopped after."""
    if not dockerd.available():
        pytest.skip("dockerd is not installed (Debian package docker.io)")
    with dockerd.running_dockerd("--storage-driver=vfs") as running:
        yield running


def test_docker_pulls_what_dockyard_pushes(dy: Dockyard, rootfs_tar: Path,
                                           registry: Registry, daemon: Daemon) -> None:
    name = f"{registry.address}/team/box:v1"  # 127.0.0.0/8 is plain HTTP to dockerd too
    dy("import", "-c", 'CMD ["sh"]', str(rootfs_tar), name)
    pushed = dy("push", name).stdout.strip().split("digest: ")[1].split()[0]
    daemon.docker("pull", name)
    ours = json.loads(dy("image", "inspect", name).stdout)[0]
    theirs = json.loads(daemon.docker("image", "inspect", name).stdout)[0]
    assert theirs["Id"] == ours["Id"]
    assert theirs["RepoDigests"] == [f"{registry.address}/team/box@{pushed}"]
    assert theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]


def _tar_entries(raw: bytes) -> dict[str, tuple[bytes, int, str, int, int, int]]:
    """name → (type, permission bits, link target, uid, gid, size): what export keeps
    (times differ, and Docker puts the type bits in the mode field as well)."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return {m.name.removeprefix("./"): (m.type, stat.S_IMODE(m.mode), m.linkname, m.uid,
                                            m.gid, m.size) for m in archive.getmembers()}


def test_export_matches_docker_export(dy: Dockyard, rootfs_tar: Path,
                                      daemon: Daemon) -> None:
    tar = rootfs_tar.read_bytes()
    assert dockerd.DOCKER is not None
    subprocess.run([dockerd.DOCKER, "import", "-", "same:1"], input=tar, env=daemon.env,
                   capture_output=True, check=True, timeout=120)
    daemon.docker("create", "--name", "theirs", "same:1", "true")
    try:
        raw = daemon.docker_bytes("export", "theirs")
    finally:
        daemon.docker("rm", "theirs")
    theirs = list(_tar_entries(raw).items())
    dy("import", str(rootfs_tar), "same:1")
    dy("create", "--name", "created", "--network", "none", "same:1", "true")
    dy("run", "--name", "ran", "--network", "none", "same:1", "true")
    try:
        for name in ("created", "ran"):
            ours = _tar_entries(subprocess.run([*dy.argv, "--root", str(dy.root), "export",
                                                name], env=dy.env, capture_output=True,
                                               check=True).stdout)
            assert list(ours.items()) == theirs, name  # same entries, same order
    finally:
        dy.remove_everything()
