"""``dockyard build`` against ``docker build`` (a private dockerd): the same Dockerfiles
from tests/data/build give the same image config fields and the same file tree.

Debian's docker.io has no buildx, so the peer is Docker's classic builder; cases
and fields where the two builders differ on purpose are listed in DIFFERENCES
with the reason.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing import dockerd
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard
from dockyard.testing.trees import tree
from tests.compat.daemons import busybox_dockerd

pytestmark = pytest.mark.root
CORPUS = Path(__file__).resolve().parents[1] / "data" / "build"
FIELDS = ("Env", "Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts", "Volumes",
          "Labels", "Healthcheck", "StopSignal", "OnBuild", "Shell")
# what `docker export` shows that is not the image's: mount points Docker creates
RUNTIME_PATHS = (".dockerenv", "proc", "sys", "dev", "etc/hosts", "etc/hostname",
                 "etc/resolv.conf", "etc/mtab")
# Cases the classic builder cannot build (BuildKit-only syntax) are not compared:
#   heredocs (heredoc syntax), mounts (RUN --mount), chown (COPY --chmod),
#   multistage (the classic builder builds the deliberately broken unused stage).
CASES = ("stages", "ignore", "config", "onbuild")


@pytest.fixture(scope="module")
def daemon() -> Iterator[dockerd.Daemon]:
    with busybox_dockerd() as running:
        yield running


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    return {field: config.get(field) or None for field in FIELDS}


def _docker_build(daemon: dockerd.Daemon, case: str, out: Path, *args: str) -> dict[str, Any]:
    tag = f"diff-{case}:1"
    daemon.docker("build", "-q", "-t", tag, *args, str(CORPUS / case),
                  env={"DOCKER_BUILDKIT": "0"})
    config: dict[str, Any] = json.loads(daemon.docker("image", "inspect", tag).stdout)[0]
    container = daemon.docker("create", tag, "true").stdout.strip()
    try:
        exported = daemon.docker_bytes("export", container)
    finally:
        daemon.docker("rm", container)
    # GNU tar, not tarfile: Debian's python3.11 (3.11.2) has no extraction filters, and
    # later Pythons' default filter would rewrite the modes and owners compared here
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "--numeric-owner", "-C", str(out)], input=exported,
                   check=True)
    return config


def test_same_config_and_tree_as_docker_build(daemon: dockerd.Daemon, tmp_path: Path) -> None:
    rootfs = make_rootfs_tar(tmp_path)
    daemon.docker("import", "-c", 'CMD ["sh"]', "-", "box:1", stdin=rootfs.read_bytes())
    cli = Dockyard(tmp_path / "root", tmp_path / "docker-config")
    cli("import", "-c", 'CMD ["sh"]', str(rootfs), "box:1")
    daemon.docker("build", "-q", "-t", "onbuild-parent:1", "-f",
                  str(CORPUS / "onbuild" / "Dockerfile.parent"), str(CORPUS / "onbuild"),
                  env={"DOCKER_BUILDKIT": "0"})
    cli("build", "-q", "-t", "onbuild-parent:1", "-f",
        str(CORPUS / "onbuild" / "Dockerfile.parent"), str(CORPUS / "onbuild"))
    for case in CASES:
        ours_dir, theirs_dir = tmp_path / f"{case}-ours", tmp_path / f"{case}-docker"
        theirs = _docker_build(daemon, case, theirs_dir)
        cli("build", "-q", "-t", f"diff-{case}:1", "-o", f"type=local,dest={ours_dir}",
            str(CORPUS / case))
        ours = json.loads(cli("image", "inspect", f"diff-{case}:1").stdout)[0]
        assert _normalise(ours["Config"]) == _normalise(theirs["Config"]), case
        assert ours.get("Author", "") == theirs.get("Author", ""), case
        ours_tree = tree(ours_dir, skip=RUNTIME_PATHS)
        theirs_tree = tree(theirs_dir, skip=RUNTIME_PATHS)
        for volume in theirs["Config"].get("Volumes") or {}:
            # `docker create` makes a VOLUME's mount point (and its parents) in the
            # container's filesystem, which `docker export` then shows
            parts = volume.strip("/").split("/")
            for depth in range(1, len(parts) + 1):
                path = "/".join(parts[:depth])
                if path not in ours_tree:
                    theirs_tree.pop(path, None)
        assert ours_tree == theirs_tree, (case, sorted(set(ours_tree.items()) ^
                                                       set(theirs_tree.items())))
