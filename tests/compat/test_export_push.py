"""The small things users notice (issue 11) that need a registry or dockerd: digests
listed per repository, push's output and gzip layers, export's entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root


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
