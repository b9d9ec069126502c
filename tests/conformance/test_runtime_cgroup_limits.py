"""blockIO, hugepageLimits and network limits, read back from the host side: both runtimes.

Each test creates a container (its init blocked before the user process) with the
limits and reads its cgroup files from the host.  Where this host cannot apply a
limit (no such controller mounted, no BFQ on the disk), both runtimes must fail
``create`` and leave nothing behind (the autouse leak check sees any test cgroup).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.bundles import BundleFactory, Runtime, base_config

pytestmark = pytest.mark.root

CGROUP = Path("/sys/fs/cgroup")
V2_ONLY = (CGROUP / "cgroup.controllers").exists()


def v1_hierarchy(controller: str) -> Path | None:
    """The v1 mount holding ``controller`` ("net_cls" in "net_cls,net_prio" too)."""
    if V2_ONLY or not CGROUP.is_dir():
        return None
    for entry in sorted(CGROUP.iterdir()):
        if controller in entry.name.split(",") and (entry / "cgroup.procs").exists():
            return entry
    return None


def host_file(config: dict[str, Any], controller: str, name: str) -> Path:
    relative = str(config["linux"]["cgroupsPath"]).lstrip("/")
    if V2_ONLY:
        return CGROUP / relative / name
    hierarchy = v1_hierarchy(controller)
    assert hierarchy is not None
    return hierarchy / relative / name


def whole_disk(path: str = "/") -> tuple[int, int, str]:
    """major, minor and sysfs name of the whole disk holding ``path`` (the kernel
    throttles and weighs disks, not partitions)."""
    dev = os.stat(path).st_dev
    sysdev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sysdev.exists():
        pytest.skip(f"{path} is not on a block device")
    real = sysdev.resolve()
    if (real / "partition").exists():
        real = real.parent
    major, minor = (int(n) for n in (real / "dev").read_text().split(":"))
    return major, minor, real.name


def scheduler(disk: str) -> str:
    """The active I/O scheduler of a disk ("none" if it has no elevator file)."""
    try:
        text = Path(f"/sys/block/{disk}/queue/scheduler").read_text()
    except OSError:
        return "none"
    return next((w[1:-1] for w in text.split() if w.startswith("[")), "none")


def has_blkio_weight() -> bool:
    """Some disk can use CFQ or BFQ, so a cgroup gets blkio.weight or blkio.bfq.weight
    (io.weight is always there on v2)."""
    if V2_ONLY:
        return True
    return any(word.strip("[]") in ("bfq", "cfq")
               for sched in Path("/sys/block").glob("*/queue/scheduler")
               for word in sched.read_text().split())


def hugepage_sizes() -> list[str]:
    """The kernel's names for the huge page sizes it has ("2MB", "1GB")."""
    sizes = []
    for entry in sorted(Path("/sys/kernel/mm/hugepages").glob("hugepages-*kB")):
        kib = int(entry.name.removeprefix("hugepages-").removesuffix("kB"))
        if kib >= 1 << 20:
            sizes.append(f"{kib >> 20}GB")
        elif kib >= 1 << 10:
            sizes.append(f"{kib >> 10}MB")
        else:
            sizes.append(f"{kib}KB")
    return sizes


def has_controller(name: str) -> bool:
    if V2_ONLY:
        return name in (CGROUP / "cgroup.controllers").read_text().split()
    return v1_hierarchy(name) is not None


def sleeper_config(resources: dict[str, Any]) -> dict[str, Any]:
    config = base_config(["sleep", "300"])
    config["linux"]["resources"].update(resources)
    return config


@contextmanager
def created(runtime: Runtime, factory: BundleFactory,
            config: dict[str, Any]) -> Iterator[str]:
    cid = f"lim-{uuid.uuid4().hex[:8]}"
    result = runtime.call("create", "--bundle", str(factory.make(config)), cid,
                          stdin=subprocess.DEVNULL)
    try:
        assert result.returncode == 0, result.stderr
        yield cid
    finally:
        runtime.call("delete", "--force", cid)


def create_fails(runtime: Runtime, factory: BundleFactory, config: dict[str, Any]) -> str:
    cid = f"lim-{uuid.uuid4().hex[:8]}"
    result = runtime.call("create", "--bundle", str(factory.make(config)), cid,
                          stdin=subprocess.DEVNULL)
    if result.returncode == 0:  # a runtime ignoring the limit must not leave it behind
        runtime.call("delete", "--force", cid)
    assert result.returncode != 0, f"{runtime.name} accepted a limit this host cannot apply"
    assert runtime.call("state", cid).returncode != 0
    relative = str(config["linux"]["cgroupsPath"]).lstrip("/")
    assert not [h for h in CGROUP.iterdir() if (h / relative).exists()], "cgroup left behind"
    return result.stderr


def test_block_io_throttles_written(runtime: Runtime, factory: BundleFactory) -> None:
    if not (V2_ONLY and has_controller("io")) and not has_controller("blkio"):
        pytest.skip("no blkio (v1) or io (v2) controller on this host")
    major, minor, _disk = whole_disk()
    dev = f"{major}:{minor}"
    config = sleeper_config({"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}],
        "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 50}]}})
    with created(runtime, factory, config):
        if V2_ONLY:
            line = host_file(config, "io", "io.max").read_text().split("\n")[0]
            assert line == f"{dev} rbps=1048576 wbps=2097152 riops=100 wiops=50"
            return
        read = {name: host_file(config, "blkio", f"blkio.throttle.{name}").read_text()
                for name in ("read_bps_device", "write_bps_device", "read_iops_device",
                             "write_iops_device")}
    assert read == {"read_bps_device": f"{dev} 1048576\n",
                    "write_bps_device": f"{dev} 2097152\n",
                    "read_iops_device": f"{dev} 100\n", "write_iops_device": f"{dev} 50\n"}


def weight_file(config: dict[str, Any]) -> Path:
    """The file the weight went to: blkio.weight (CFQ) or blkio.bfq.weight (BFQ) on v1,
    io.bfq.weight or io.weight on v2."""
    names = ("io.bfq.weight", "io.weight") if V2_ONLY else ("blkio.weight", "blkio.bfq.weight")
    paths = [host_file(config, "io" if V2_ONLY else "blkio", name) for name in names]
    return next((p for p in paths if p.exists()), paths[-1])


def test_block_io_weight_written(runtime: Runtime, factory: BundleFactory) -> None:
    if not has_controller("io" if V2_ONLY else "blkio") or not has_blkio_weight():
        pytest.skip("no blkio weight on this host (neither CFQ nor BFQ)")
    config = sleeper_config({"blockIO": {"weight": 500}})
    with created(runtime, factory, config):
        path = weight_file(config)
        value = path.read_text().split("\n")[0].removeprefix("default ")
    assert value == ("4950" if path.name == "io.weight" else "500")


def test_update_blkio_weight(runtime: Runtime, factory: BundleFactory) -> None:
    """``update --blkio-weight`` (runc's flag) rewrites the weight of a live container."""
    if not has_controller("io" if V2_ONLY else "blkio") or not has_blkio_weight():
        pytest.skip("no blkio weight on this host (neither CFQ nor BFQ)")
    config = sleeper_config({"blockIO": {"weight": 500}})
    with created(runtime, factory, config) as cid:
        result = runtime.call("update", "--blkio-weight", "300", cid)
        assert result.returncode == 0, result.stderr
        path = weight_file(config)
        value = path.read_text().split("\n")[0].removeprefix("default ")
    assert value == ("2930" if path.name == "io.weight" else "300")


@pytest.fixture
def bfq_disk(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A loop device of our own on a sparse file, switched to BFQ (per-device weights
    need it), put back and detached afterwards."""
    losetup = shutil.which("losetup")
    if V2_ONLY or losetup is None or not has_controller("blkio"):
        pytest.skip("needs losetup and a v1 blkio hierarchy")
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(16 << 20)
    found = subprocess.run([losetup, "--find", "--show", str(image)], capture_output=True,
                           text=True, check=False)
    if found.returncode != 0:
        pytest.skip(f"no free loop device: {found.stderr.strip()}")
    device = found.stdout.strip()
    sched = Path(f"/sys/block/{os.path.basename(device)}/queue/scheduler")
    try:
        if "bfq" not in sched.read_text():
            pytest.skip("the kernel has no BFQ scheduler")
        before = scheduler(os.path.basename(device))
        sched.write_text("bfq")
        try:
            rdev = os.stat(device).st_rdev
            yield os.major(rdev), os.minor(rdev)
        finally:
            sched.write_text(before)
    finally:
        subprocess.run([losetup, "-d", device], check=False)


def test_block_io_weight_device_written(runtime: Runtime, factory: BundleFactory,
                                        bfq_disk: tuple[int, int]) -> None:
    major, minor = bfq_disk
    config = sleeper_config({"blockIO": {"weightDevice": [
        {"major": major, "minor": minor, "weight": 300}]}})
    with created(runtime, factory, config):
        lines = host_file(config, "blkio", "blkio.bfq.weight_device").read_text().splitlines()
    assert f"{major}:{minor} 300" in lines


def test_block_io_weight_device_without_bfq_fails(runtime: Runtime,
                                                  factory: BundleFactory) -> None:
    """The root disk does not run BFQ: its per-device weight cannot be applied."""
    major, minor, disk = whole_disk()
    if V2_ONLY or not has_controller("blkio") or scheduler(disk) in ("bfq", "cfq"):
        pytest.skip("needs a v1 blkio hierarchy and a root disk without BFQ or CFQ")
    create_fails(runtime, factory, sleeper_config({"blockIO": {"weightDevice": [
        {"major": major, "minor": minor, "weight": 300}]}}))


def test_hugetlb_limit_written(runtime: Runtime, factory: BundleFactory) -> None:
    sizes = hugepage_sizes()
    if not sizes or not has_controller("hugetlb"):
        pytest.skip("no huge page sizes or no hugetlb controller for containers on this host")
    config = sleeper_config({"hugepageLimits": [
        {"pageSize": size, "limit": (index + 2) * 1 << 30} for index, size in enumerate(sizes)]})
    suffix = "max" if V2_ONLY else "limit_in_bytes"
    with created(runtime, factory, config):
        values = [host_file(config, "hugetlb", f"hugetlb.{size}.{suffix}").read_text().strip()
                  for size in sizes]
    assert values == [str((index + 2) * 1 << 30) for index in range(len(sizes))]


def test_hugetlb_limit_without_the_controller_fails(runtime: Runtime,
                                                    factory: BundleFactory) -> None:
    sizes = hugepage_sizes()
    if not sizes or has_controller("hugetlb"):
        pytest.skip("the hugetlb controller is there for containers (or no huge pages)")
    create_fails(runtime, factory, sleeper_config(
        {"hugepageLimits": [{"pageSize": sizes[0], "limit": 1 << 30}]}))


def test_net_cls_classid_written(runtime: Runtime, factory: BundleFactory) -> None:
    if V2_ONLY or not has_controller("net_cls"):
        pytest.skip("no v1 net_cls hierarchy on this host")
    config = sleeper_config({"network": {"classID": 0x100001}})
    with created(runtime, factory, config):
        assert host_file(config, "net_cls", "net_cls.classid").read_text().strip() == "1048577"


def test_net_prio_ifpriomap_written(runtime: Runtime, factory: BundleFactory) -> None:
    if V2_ONLY or not has_controller("net_prio"):
        pytest.skip("no v1 net_prio hierarchy on this host")
    config = sleeper_config({"network": {"priorities": [{"name": "lo", "priority": 5}]}})
    with created(runtime, factory, config):
        lines = host_file(config, "net_prio", "net_prio.ifpriomap").read_text().splitlines()
    assert "lo 5" in lines


@pytest.mark.parametrize("network", [{"classID": 0x100001},
                                     {"priorities": [{"name": "lo", "priority": 5}]}])
def test_network_limits_without_the_controller_fail(runtime: Runtime, factory: BundleFactory,
                                                    network: dict[str, Any]) -> None:
    controller = "net_cls" if "classID" in network else "net_prio"
    if V2_ONLY or has_controller(controller):
        pytest.skip(f"{controller} is mounted here (or the host is v2-only)")
    create_fails(runtime, factory, sleeper_config({"network": network}))
