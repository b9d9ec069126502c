"""cgroup v1 and v2 managers taking their root as a parameter, and the pure plans."""

from __future__ import annotations

import os

from dockyard.runtime.linux.cgroups import common
from dockyard.runtime.linux.cgroups.plan import (
    CgroupWrite,
    blkio_to_io_weight,
    plan_v1,
    plan_v2,
    shares_to_weight,
)
from dockyard.runtime.linux.cgroups.v1 import CgroupV1Manager
from dockyard.runtime.linux.cgroups.v2 import CgroupV2Manager
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:  # (the spec's types: ~1.7 ms that delete does without)
    from typing import Protocol

    from dockyard.oci.runtime_spec import Resources

DEFAULT_ROOT = "/sys/fs/cgroup"  # paths are str here: see common


if TYPE_CHECKING:  # a type checker's contract, nothing at run time
    class CgroupManager(Protocol):
        version: int

        def create(self) -> None: ...
        def set(self, resources: Resources, extra_devices: tuple[str, ...] = ()) -> None: ...
        def add(self, pid: int) -> None: ...
        def mount_paths(self) -> dict[str, str]: ...
        def pids(self) -> list[int]: ...
        def freeze(self) -> None: ...
        def thaw(self) -> None: ...
        def is_frozen(self) -> bool: ...
        def exists(self) -> bool: ...
        def destroy(self) -> None: ...
        def to_dict(self) -> dict[str, object]: ...


def open_manager(cgroups_path: str, root: str = DEFAULT_ROOT) -> CgroupManager:
    """The manager for this host: v2 when ``root`` is a unified mount, else v1."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return CgroupV2Manager.for_path(root, cgroups_path, common.own_cgroups().get("", "/"))
    return CgroupV1Manager.for_path(root, cgroups_path)


def top_level_names(root: str = DEFAULT_ROOT) -> set[str]:
    """Names of the cgroups right under the top of the hierarchies ``open_manager``
    uses for an absolute path (v2: ``root`` itself; v1: each v1 hierarchy)."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        tops = [root]
    else:
        tops = [os.path.join(root, name) for name, fstype in common.cgroup_mounts(root).items()
                if name and fstype == "cgroup"]
    names: set[str] = set()
    for top in tops:
        try:
            names.update(entry.name for entry in os.scandir(top) if entry.is_dir())
        except OSError:
            continue
    return names


def from_dict(data: dict[str, object]) -> CgroupManager:
    root = str(data["root"])
    if data.get("version") == 2:
        return CgroupV2Manager(root, str(data["dir"]))
    dirs = data.get("dirs")
    assert isinstance(dirs, dict)
    return CgroupV1Manager(root, {str(k): str(v) for k, v in dirs.items()})


__all__ = [
    "DEFAULT_ROOT",
    "CgroupManager",
    "CgroupV1Manager",
    "CgroupV2Manager",
    "CgroupWrite",
    "blkio_to_io_weight",
    "from_dict",
    "open_manager",
    "plan_v1",
    "plan_v2",
    "shares_to_weight",
    "top_level_names",
]
