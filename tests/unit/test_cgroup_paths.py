"""A config's ``cgroupsPath`` names a cgroup under the hierarchy's root, never above
it (runc's CleanPath): ".." cannot climb out, "//" and "." are cleaned away."""

from __future__ import annotations

import pytest

from dockyard.runtime.linux.cgroups.common import contained
from dockyard.runtime.linux.cgroups.v2 import CgroupV2Manager

ROOT = "/sys/fs/cgroup"


@pytest.mark.parametrize(("parts", "want"), [
    (("/dockyard/c1",), f"{ROOT}/dockyard/c1"),
    (("/user.slice", "c1"), f"{ROOT}/user.slice/c1"),
    (("/",), ROOT),
    (("",), ROOT),
    (("/../../../etc/x",), f"{ROOT}/etc/x"),
    (("/own", "../../../../tmp/x"), f"{ROOT}/tmp/x"),
    (("//a//./b/",), f"{ROOT}/a/b"),
    (("/a/../../b",), f"{ROOT}/b"),
])
def test_contained(parts: tuple[str, ...], want: str) -> None:
    assert contained(ROOT, *parts) == want
    assert contained(ROOT + "/", *parts) == want


def test_v2_manager_paths_stay_under_the_root() -> None:
    assert CgroupV2Manager.for_path(ROOT, "/../../x").directory == f"{ROOT}/x"
    assert CgroupV2Manager.for_path(ROOT, "../../x", "/init.scope").directory == f"{ROOT}/x"
    assert CgroupV2Manager.for_path(ROOT, "c1", "/user.slice").directory == \
        f"{ROOT}/user.slice/c1"
    assert CgroupV2Manager.for_path(ROOT, "/").directory == ROOT
