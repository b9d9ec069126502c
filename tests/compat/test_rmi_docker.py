"""``rmi`` decided as dockerd decides it, side by side with a private dockerd: a name
untags only that name (``-f`` or not), an ID takes every name, what a running or a
stopped container's image may lose, Docker's conflict words — and a container whose
image went still starts with its image's command."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard
from tests.compat.daemons import busybox_dockerd

pytestmark = pytest.mark.root

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def _story(run: Run, tar: Path) -> list[str]:
    """What each step printed (or refused), with the engine's own IDs named."""
    image = run("import", "-c", 'CMD ["echo", "from-image"]', str(tar), "rmtest:1").stdout.strip()
    run("tag", "rmtest:1", "rmtest:2")
    run("tag", "rmtest:1", "other/rmtest:1")
    ids = {image[7:]: "IMAGE", image[7:19]: "IMAGE"}
    for name, argv in (("keeper", []), ("runner", ["sleep", "60"])):
        made = run("create", "--name", name, "rmtest:1", *argv).stdout.strip()
        ids[made] = ids[made[:12]] = name
    run("start", "runner")

    def said(*args: str) -> str:
        result = run(*args, check=False)
        text = (result.stdout + result.stderr).strip()
        text = re.sub(r"^(Error response from daemon: |Error: )", "", text, flags=re.M)
        # docker also lists the layers it deleted; the image's own line is what counts
        lines = [line for line in text.splitlines()
                 if not line.startswith("Deleted: ") or image[7:] in line]
        text = f"{' '.join(args)} -> {result.returncode}: " + "\n".join(lines)
        for found, name in sorted(ids.items(), key=lambda item: -len(item[0])):
            text = text.replace(found, name)
        return text

    steps = [said("rmi", "rmtest:1"),  # other names left: untagged, even without -f
             said("rmi", image[7:19]),  # an ID, with names in two repositories
             said("rmi", "-f", image[7:19]),  # a running container uses it
             said("rmi", "-f", "nope:404", "rmtest:2")]  # only that name; and goes on
    run("rm", "-f", "runner")
    steps += [said("rmi", image[7:19]),  # a stopped container uses it
              said("rmi", "other/rmtest:1"),  # its last name, a container uses it
              said("rmi", "-f", "other/rmtest:1")]  # its last name: the image goes
    run("start", "keeper")
    run("wait", "keeper")
    steps.append("logs keeper: " + run("logs", "keeper").stdout.strip())
    listed = run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    steps.append(f"images: {[name for name in listed if name != 'box:1']}")  # (the fixture's)
    if isinstance(run, Dockyard):  # a container keeps its image's config: nothing amiss
        steps.append(run("system", "check").stdout.strip())
    else:
        steps.append("ok: store consistent")
    run("rm", "-f", "keeper")
    return steps


def test_rmi_and_a_container_whose_image_went_as_dockerd(box: Dockyard,
                                                          tmp_path: Path) -> None:
    (tmp_path / "tar").mkdir()
    tar = make_rootfs_tar(tmp_path / "tar")
    with busybox_dockerd() as daemon:
        theirs = _story(lambda *a, check=True: daemon.docker(*a, check=check), tar)
    ours = _story(box, tar)
    assert ours == theirs
