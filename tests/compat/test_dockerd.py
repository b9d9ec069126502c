"""Docker itself drives dockyard-runtime: ``dockerd --add-runtime dy=dockyard-runtime``.

Runs where Debian's docker.io (dockerd + containerd) is installed.  The daemon gets
private data, exec and socket paths under the test's temp dir, a bridge of its own
(removed afterwards) and no iptables rules, and is stopped (by its pid) at the end;
the cgroup parents it creates are removed if they did not exist before.  The runtime
it drives is the ``dockyard-runtime`` beside this interpreter (the test virtualenv's),
never one found on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing import dockerd
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.dockerd import DOCKER, Daemon
from tests.compat.daemons import busybox_dockerd

pytestmark = pytest.mark.root



def _runtime_path() -> str:
    beside = Path(sys.executable).with_name("dockyard-runtime")
    if not beside.exists():
        pytest.skip(f"dockyard-runtime is not installed beside {sys.executable}")
    return str(beside)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with busybox_dockerd(f"--add-runtime=dy={_runtime_path()}") as running:
        yield running


@pytest.fixture
def busybox_image(daemon: Daemon, tmp_path: Path) -> str:
    tar = make_rootfs_tar(tmp_path).read_bytes()
    assert DOCKER is not None
    subprocess.run([DOCKER, "import", "-", "dockyard-busybox:test"], input=tar,
                   env=daemon.env, capture_output=True, check=True, timeout=120)
    return "dockyard-busybox:test"


def test_docker_run_with_dockyard_runtime(daemon: Daemon, busybox_image: str) -> None:
    result = daemon.docker("run", "--rm", "--runtime", "dy", "--network", "none",
                           busybox_image, "sh", "-c",
                           "echo hello; grep -E '^Seccomp:' /proc/self/status; exit 3",
                           check=False)
    assert result.stdout.split() == ["hello", "Seccomp:", "2"], result.stderr
    assert result.returncode == 3


def test_docker_limits_exec_pause_stop(daemon: Daemon, busybox_image: str) -> None:
    name = "dy-lifecycle"
    daemon.docker("run", "-d", "--name", name, "--runtime", "dy", "--network", "none",
                  "--memory", "32m", "--pids-limit", "20", busybox_image, "sleep", "300")
    try:
        out = daemon.docker("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                            "/sys/fs/cgroup/pids/pids.max").stdout.split()
        assert out == [str(32 * 1024 * 1024), "20"]
        daemon.docker("pause", name)
        status = daemon.docker("inspect", "--format", "{{.State.Status}}", name).stdout
        assert status.strip() == "paused"
        daemon.docker("unpause", name)
        daemon.docker("stop", "-t", "1", name)
        status = daemon.docker("inspect", "--format", "{{.State.Status}}", name).stdout
        assert status.strip() == "exited"
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_docker_maps_missing_command_to_127(daemon: Daemon, busybox_image: str) -> None:
    result = daemon.docker("run", "--rm", "--runtime", "dy", "--network", "none",
                           busybox_image, "no-such-command", check=False)
    assert result.returncode == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in result.stderr


def test_docker_loads_what_dockyard_saves(daemon: Daemon, tmp_path: Path) -> None:
    from dockyard.testing.cli import Dockyard

    dy = Dockyard(tmp_path / "dy-root", tmp_path / "dy-config")
    (tmp_path / "for-save").mkdir()
    tar = make_rootfs_tar(tmp_path / "for-save")
    dy("import", "-c", 'CMD ["echo", "saved by dockyard"]', str(tar), "dyimg:1")
    archive = tmp_path / "dyimg.tar"
    dy("save", "-o", str(archive), "dyimg:1")
    assert DOCKER is not None
    loaded = subprocess.run([DOCKER, "load", "-i", str(archive)], env=daemon.env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert loaded.returncode == 0, loaded.stderr
    assert "Loaded image: dyimg:1" in loaded.stdout
    ours = json.loads(dy("image", "inspect", "dyimg:1").stdout)[0]["Id"]
    theirs = daemon.docker("image", "inspect", "--format", "{{.Id}}", "dyimg:1").stdout.strip()
    assert theirs == ours
    out = daemon.docker("run", "--rm", "--runtime", "dy", "--network", "none", "dyimg:1").stdout
    assert out == "saved by dockyard\n"


def test_dockyard_loads_what_docker_saves(daemon: Daemon, busybox_image: str,
                                          tmp_path: Path) -> None:
    from dockyard.testing.cli import Dockyard

    archive = tmp_path / "from-docker.tar"
    daemon.docker("save", "-o", str(archive), busybox_image)
    dy = Dockyard(tmp_path / "dy-root", tmp_path / "dy-config")
    assert dy("load", "-i", str(archive)).stdout.strip() == f"Loaded image: {busybox_image}"
    ours = json.loads(dy("image", "inspect", busybox_image).stdout)[0]["Id"]
    theirs = daemon.docker("image", "inspect", "--format", "{{.Id}}", busybox_image)
    assert ours == theirs.stdout.strip()


def test_private_dockerd_has_a_bridge_of_its_own_and_removes_only_it() -> None:
    """dockerd given ``--bridge=none`` deletes the host's docker0: the helper gives it a
    bridge made for it instead, and deletes that one (and nothing else) afterwards."""
    if not dockerd.available():
        pytest.skip("dockerd is not installed (Debian package docker.io)")
    before = set(os.listdir("/sys/class/net"))
    # the host's own links (docker0 if there is one, eth0, ...); tests' "dy…" links come
    # and go with concurrent tests, and the leak check covers removals of those
    host = {link for link in before if not link.startswith("dy")}
    with dockerd.running_dockerd("--storage-driver=vfs") as running:
        bridge = running.docker("network", "inspect", "--format",
                                '{{index .Options "com.docker.network.bridge.name"}}',
                                "bridge").stdout.strip()
        assert bridge.startswith("dyd-") and len(bridge) <= 15, bridge
        during = set(os.listdir("/sys/class/net"))
        assert bridge in during - before
        assert host <= during
    after = set(os.listdir("/sys/class/net"))
    assert bridge not in after
    assert host <= after


def test_private_bridge_subnet_overlaps_no_route() -> None:
    import ipaddress

    taken = [ipaddress.IPv4Network("10.217.0.0/17"), ipaddress.IPv4Network("10.217.128.0/18"),
             ipaddress.IPv4Network("10.217.192.0/24")]
    for _ in range(20):
        subnet = dockerd.free_subnet(taken)
        assert subnet.prefixlen == 24 and subnet.subnet_of(dockerd.BRIDGE_POOL)
        assert not any(subnet.overlaps(other) for other in taken), subnet
    with pytest.raises(RuntimeError):
        dockerd.free_subnet([dockerd.BRIDGE_POOL])
