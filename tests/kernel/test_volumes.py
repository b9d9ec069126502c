"""Volumes as a user uses them: named, anonymous, bind, tmpfs, --volumes-from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


@pytest.fixture
def dy(tmp_path: Path) -> Iterator[Dockyard]:
    from dockyard.testing.bundles import busybox_path, make_rootfs_tar

    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")

    def seed(rootfs: Path) -> None:
        (rootfs / "data").mkdir()
        (rootfs / "data" / "seed.txt").write_text("from the image\n")

    tar = make_rootfs_tar(tmp_path, seed)
    cli = Dockyard(tmp_path / "root", tmp_path / "docker-config")
    cli("import", "-c", 'CMD ["sh"]', str(tar), "vbox:1")
    yield cli
    cli.remove_everything()


def test_named_volume_outlives_its_container_and_is_seeded(dy: Dockyard) -> None:
    dy("volume", "create", "--label", "team=a", "keep")
    out = dy("run", "--rm", "-v", "keep:/data", "vbox:1", "sh", "-c",
             "cat /data/seed.txt; echo written > /data/new").stdout
    assert out == "from the image\n"  # an empty volume is filled from the image
    assert dy("run", "--rm", "-v", "keep:/data", "vbox:1", "cat", "/data/new").stdout == \
        "written\n"
    doc = json.loads(dy("volume", "inspect", "keep").stdout)[0]
    assert doc["Labels"] == {"team": "a"} and doc["Driver"] == "local"


def test_nocopy_leaves_an_empty_volume_empty(dy: Dockyard) -> None:
    """``-v NAME:/p:nocopy`` and ``--mount …,volume-nocopy`` (Docker's NoCopy): the image's
    content at the path is not copied into the fresh volume, and the volume stays
    empty for the next container too (a later use without nocopy fills it then)."""
    listing = "ls -A /data; echo end"
    assert dy("run", "--rm", "-v", "bare:/data:nocopy", "vbox:1", "sh", "-c",
              listing).stdout == "end\n"
    assert dy("run", "--rm", "--mount", "type=volume,source=bare2,target=/data,"
              "volume-nocopy", "vbox:1", "sh", "-c", listing).stdout == "end\n"
    assert dy("run", "--rm", "-v", "bare:/data", "vbox:1", "sh", "-c",
              listing).stdout == "seed.txt\nend\n"


def test_read_only_volume_refuses_writes(dy: Dockyard) -> None:
    result = dy("run", "--rm", "-v", "ro-vol:/data:ro", "vbox:1", "sh", "-c",
                "touch /data/x || echo refused")
    assert result.stdout == "refused\n"


def test_bind_mounts(dy: Dockyard, tmp_path: Path) -> None:
    host = tmp_path / "host"
    created = tmp_path / "created-by-v"
    host.mkdir()
    (host / "file").write_text("host data\n")
    assert dy("run", "--rm", "-v", f"{host}:/h:ro", "vbox:1", "cat", "/h/file").stdout == \
        "host data\n"
    dy("run", "--rm", "-v", f"{created}:/c", "vbox:1", "touch", "/c/made")
    assert (created / "made").exists()  # -v creates a missing source, as Docker does
    result = dy("run", "--rm", "--mount", f"type=bind,source={tmp_path / 'missing'},target=/m",
                "vbox:1", "true", check=False)
    assert result.returncode == 125
    assert "bind source path does not exist" in result.stderr


def test_tmpfs_mount(dy: Dockyard) -> None:
    out = dy("run", "--rm", "--mount", "type=tmpfs,target=/scratch,tmpfs-size=2m", "vbox:1",
             "sh", "-c", "grep ' /scratch ' /proc/mounts").stdout
    assert out.startswith("tmpfs /scratch tmpfs") and "size=2048k" in out


def test_anonymous_volumes_and_rm_v(dy: Dockyard) -> None:
    dy("run", "--name", "anon", "-v", "/cache", "vbox:1", "touch", "/cache/x")
    doc = json.loads(dy("container", "inspect", "anon").stdout)[0]
    name = doc["Mounts"][0]["Name"]
    assert len(name) == 64 and name in dy("volume", "ls", "-q").stdout.split()
    assert dy("volume", "rm", name, check=False).returncode == 1  # in use
    dy("rm", "-v", "anon")
    assert name not in dy("volume", "ls", "-q").stdout.split()


def test_volumes_from(dy: Dockyard) -> None:
    dy("create", "--name", "source", "-v", "shared:/shared", "vbox:1")
    dy("run", "--rm", "--volumes-from", "source", "vbox:1", "sh", "-c",
       "echo via-volumes-from > /shared/f")
    assert dy("run", "--rm", "-v", "shared:/s", "vbox:1", "cat", "/s/f").stdout == \
        "via-volumes-from\n"


def test_tmpfs_volume_option(dy: Dockyard) -> None:
    dy("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt",
       "o=size=1m", "mem")
    out = dy("run", "--rm", "-v", "mem:/m", "vbox:1", "sh", "-c",
             "echo hi > /m/f; grep ' /m ' /proc/mounts").stdout
    assert out.startswith("tmpfs /m tmpfs")
    dy("volume", "rm", "mem")
