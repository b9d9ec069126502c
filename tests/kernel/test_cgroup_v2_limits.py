"""The v2 manager applying hugetlb and io limits to a real unified hierarchy.

runc (and so the conformance suite) uses the v1 hierarchies on a hybrid host; the
v2 manager is exercised here on the unified mount beside them, in a cgroup of its
own, with whatever controllers that mount offers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import InvalidSpec
from dockyard.oci.runtime_spec import BlockIO, HugepageLimit, Resources, ThrottleDevice
from dockyard.runtime.linux.cgroups import CgroupV2Manager, common
from tests.conformance.test_runtime_cgroup_limits import hugepage_sizes, whole_disk

pytestmark = pytest.mark.root
ROOT = Path("/sys/fs/cgroup")


def _v2_root() -> Path:
    for candidate in (ROOT, ROOT / "unified"):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    pytest.skip("no cgroup v2 hierarchy mounted on this host")


@pytest.fixture
def manager() -> Iterator[CgroupV2Manager]:
    made = CgroupV2Manager.for_path(_v2_root(), f"/dockyard-test-{uuid.uuid4().hex[:10]}")
    made.create()
    try:
        yield made
    finally:
        made.destroy()


def _controllers(manager: CgroupV2Manager) -> list[str]:
    return common.read(manager.directory, "cgroup.controllers").split()


def test_hugetlb_max_written(manager: CgroupV2Manager) -> None:
    sizes = hugepage_sizes()
    if not sizes or "hugetlb" not in _controllers(manager):
        pytest.skip("no huge page sizes or no hugetlb controller in the v2 hierarchy")
    manager.set(Resources(hugepage_limits=tuple(
        HugepageLimit(size, (index + 1) << 30) for index, size in enumerate(sizes))))
    assert [common.read(manager.directory, f"hugetlb.{size}.max").strip() for size in sizes] \
        == [str((index + 1) << 30) for index in range(len(sizes))]


def test_hugetlb_size_the_kernel_lacks(manager: CgroupV2Manager) -> None:
    if "hugetlb" not in _controllers(manager):
        pytest.skip("no hugetlb controller in the v2 hierarchy")
    with pytest.raises(InvalidSpec, match=r"linux.resources.hugepageLimits: hugetlb.3MB.max "
                                          r"is not supported by this kernel"):
        manager.set(Resources(hugepage_limits=(HugepageLimit("3MB", 1 << 30),)))


def test_io_max_written(manager: CgroupV2Manager) -> None:
    if "io" not in _controllers(manager):
        pytest.skip("no io controller in the v2 hierarchy (blkio is a v1 hierarchy here)")
    major, minor, _disk = whole_disk()
    manager.set(Resources(block_io=BlockIO(
        throttle_read_bps=(ThrottleDevice(major, minor, 1048576),),
        throttle_write_iops=(ThrottleDevice(major, minor, 50),))))
    assert common.read(manager.directory, "io.max").splitlines() == [
        f"{major}:{minor} rbps=1048576 wbps=max riops=max wiops=50"]


def test_io_limits_without_the_io_controller(manager: CgroupV2Manager) -> None:
    if "io" in _controllers(manager):
        pytest.skip("the io controller is there")
    major, minor, _disk = whole_disk()
    with pytest.raises(InvalidSpec, match=r"linux.resources.blockIO.throttleReadBpsDevice: "
                                          r"io.max is not supported by this kernel"):
        manager.set(Resources(block_io=BlockIO(
            throttle_read_bps=(ThrottleDevice(major, minor, 1048576),))))
    with pytest.raises(InvalidSpec, match=r"linux.resources.blockIO.weight: io.weight is not "
                                          r"supported by this kernel"):
        manager.set(Resources(block_io=BlockIO(weight=500)))
