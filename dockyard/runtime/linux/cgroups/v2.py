"""cgroup v2 manager: one directory in the unified hierarchy, limits via ``plan_v2``."""

from __future__ import annotations

import os
import time

from dockyard.errors import InvalidSpec
from dockyard.runtime.linux import cgroup_peek
from dockyard.runtime.linux.cgroups import common
from dockyard.runtime.linux.cgroups.plan import plan_v2
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:  # (the spec's types: ~1.7 ms that delete does without)
    from _typeshed import StrPath

    from dockyard.oci.runtime_spec import Resources
from dockyard.stdlite import suppress

_WANTED = ("cpu", "cpuset", "memory", "pids", "io", "hugetlb")


class CgroupV2Manager:
    """Manages one container's cgroup in a unified hierarchy mounted at ``root``."""

    version = 2

    def __init__(self, root: StrPath, directory: StrPath) -> None:
        self.root = os.path.normpath(root)
        self.directory = os.path.normpath(directory)

    @classmethod
    def for_path(cls, root: StrPath, cgroups_path: str, own: str = "/") -> CgroupV2Manager:
        root = os.fspath(root)
        if cgroups_path.startswith("/"):
            return cls(root, common.contained(root, cgroups_path))
        return cls(root, common.contained(root, own, cgroups_path))

    def create(self) -> None:
        """mkdir each level, enabling the available controllers for the level below."""
        relative = os.path.relpath(self.directory, self.root)  # (for_path keeps it under)
        current = self.root
        for part in relative.split("/") if relative != "." else ():
            available = common.read(current, "cgroup.controllers").split()
            enable = " ".join(f"+{c}" for c in _WANTED if c in available)
            if enable and current != self.root:
                common.write(current, "cgroup.subtree_control", enable)
            elif enable:
                self._try_enable(current, enable)
            current = os.path.join(current, part)
            with suppress(FileExistsError):
                os.mkdir(current)

    @staticmethod
    def _try_enable(directory: str, enable: str) -> None:
        # the root may hold processes and refuse; limits then fail later, clearly
        with suppress(InvalidSpec):
            common.write(directory, "cgroup.subtree_control", enable)

    def set(self, resources: Resources, extra_devices: tuple[str, ...] = ()) -> None:
        """v2 device control needs eBPF programs; ``extra_devices`` is unused here."""
        def present(_controller: str, file: str) -> bool:
            return os.path.exists(os.path.join(self.directory, file))

        for write in plan_v2(resources, present):
            common.write(self.directory, write.file, write.value, write.field)

    def add(self, pid: int) -> None:
        common.write(self.directory, "cgroup.procs", str(pid))

    def mount_paths(self) -> dict[str, str]:
        return {"": self.directory}

    def pids(self) -> list[int]:
        return common.read_pids(self.directory)

    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        common.write(self.directory, "cgroup.freeze", value)
        for _ in range(1000):
            if f"frozen {value}" in common.read(self.directory, "cgroup.events"):
                return
            time.sleep(0.001)

    def is_frozen(self) -> bool:
        return cgroup_peek.frozen(self.to_dict())

    def exists(self) -> bool:
        return os.path.exists(self.directory)

    def destroy(self) -> None:
        common.remove_tree(self.directory)

    def to_dict(self) -> dict[str, object]:
        return {"version": 2, "root": self.root, "dir": self.directory}
