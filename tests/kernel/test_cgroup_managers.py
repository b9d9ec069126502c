"""The cgroup managers against the real hierarchies, each test with its own cgroup."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.oci.runtime_spec import Resources
from dockyard.runtime.linux.cgroups import CgroupV1Manager, CgroupV2Manager, common

pytestmark = pytest.mark.root
ROOT = Path("/sys/fs/cgroup")


def _v2_root() -> Path:
    for candidate in (ROOT, ROOT / "unified"):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    pytest.skip("no cgroup v2 hierarchy mounted on this host")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_v2_manager_add_freeze_thaw_destroy(sleeper: subprocess.Popen[bytes]) -> None:
    root = _v2_root()
    manager = CgroupV2Manager.for_path(root, f"/dockyard-test-{uuid.uuid4().hex[:10]}")
    manager.create()
    try:
        manager.add(sleeper.pid)
        assert manager.pids() == [sleeper.pid]
        manager.freeze()
        assert manager.is_frozen()
        assert "frozen 1" in common.read(manager.directory, "cgroup.events")
        manager.thaw()
        assert not manager.is_frozen()
    finally:
        sleeper.kill()
        sleeper.wait()
        manager.destroy()
    assert not manager.exists()


def test_v1_manager_limits_and_freezer(sleeper: subprocess.Popen[bytes]) -> None:
    if (ROOT / "cgroup.controllers").exists():
        pytest.skip("this host runs cgroup v2 only")
    manager = CgroupV1Manager.for_path(ROOT, f"/dockyard-test-{uuid.uuid4().hex[:10]}")
    manager.create()
    try:
        manager.set(Resources(memory_limit=48 * 1024 * 1024, pids_limit=7, cpu_shares=256))
        manager.add(sleeper.pid)
        assert common.read(manager.dirs["memory"], "memory.limit_in_bytes").strip() == str(
            48 * 1024 * 1024)
        assert common.read(manager.dirs["pids"], "pids.max").strip() == "7"
        assert common.read(manager.dirs["cpu"], "cpu.shares").strip() == "256"
        assert manager.pids() == [sleeper.pid]
        manager.freeze()
        assert manager.is_frozen()
        manager.thaw()
        assert not manager.is_frozen()
    finally:
        sleeper.kill()
        sleeper.wait()
        manager.destroy()
    assert not manager.exists()


def test_v1_refuses_a_bad_value_clearly() -> None:
    if (ROOT / "cgroup.controllers").exists():
        pytest.skip("this host runs cgroup v2 only")
    from dockyard.errors import InvalidSpec

    manager = CgroupV1Manager.for_path(ROOT, f"/dockyard-test-{uuid.uuid4().hex[:10]}")
    manager.create()
    try:
        with pytest.raises(InvalidSpec, match="cpuset.cpus"):
            manager.set(Resources(cpuset_cpus="999"))
    finally:
        manager.destroy()
