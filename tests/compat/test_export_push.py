"""The small things users notice (issue 11) that need a registry or dockerd: digests
listed per repository, push's output and gzip layers, export's entries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from dockyard.testing.cli import Dockyard
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
