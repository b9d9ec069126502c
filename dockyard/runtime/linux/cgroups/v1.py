"""cgroup v1 manager: one directory per mounted hierarchy, limits via ``plan_v1``."""

from __future__ import annotations

import os
import time

from dockyard.errors import InvalidSpec
from dockyard.runtime.linux import cgroup_peek
from dockyard.runtime.linux.cgroups import common
from dockyard.runtime.linux.cgroups.plan import plan_v1
from dockyard.stdlite import TYPE_CHECKING, suppress

if TYPE_CHECKING:  # (the spec's types: ~1.7 ms that delete does without)
    from _typeshed import StrPath

    from dockyard.oci.runtime_spec import Resources


class CgroupV1Manager:
    """Manages one container's cgroup across every v1 hierarchy under ``root``."""

    version = 1

    def __init__(self, root: StrPath, dirs: dict[str, str]) -> None:
        self.root = os.path.normpath(root)
        # hierarchy dir name ("memory", "systemd", "unified") -> cgroup dir
        self.dirs = {name: os.path.normpath(directory) for name, directory in dirs.items()}

    @classmethod
    def for_path(cls, root: StrPath, cgroups_path: str) -> CgroupV1Manager:
        root = os.fspath(root)
        own = common.own_cgroups()
        dirs: dict[str, str] = {}
        for name, fstype in common.cgroup_mounts(root).items():
            if not name or fstype != "cgroup":
                continue  # hybrid hosts: the unified v2 mount is not ours to manage (as runc)
            if cgroups_path.startswith("/"):
                dirs[name] = common.contained(os.path.join(root, name), cgroups_path)
            else:
                dirs[name] = common.contained(os.path.join(root, name), own.get(name, "/"),
                                              cgroups_path)
        return cls(root, dirs)

    def create(self) -> None:
        for name, directory in self.dirs.items():
            if name == "cpuset":
                self._create_cpuset(directory)
            else:
                os.makedirs(directory, exist_ok=True)

    def _create_cpuset(self, directory: str) -> None:
        """New cpuset cgroups start empty and refuse tasks: copy the parent's sets down."""
        missing = []
        current = directory
        while not os.path.exists(current):
            missing.append(current)
            current = os.path.dirname(current)
        # the directory may be there already, made by a create of the same container
        # racing ours (a policy restart beside a `restart`) that has not filled its sets
        # yet: a task written to it then fails with ENOSPC — so fill it too, if empty
        for level in [*reversed(missing)] or [directory]:
            with suppress(FileExistsError):
                os.mkdir(level)
            for file in ("cpuset.cpus", "cpuset.mems"):
                if not common.read(level, file).strip():
                    common.write(level, file,
                                 common.read(os.path.dirname(level), file).strip())

    def _dir(self, controller: str) -> str | None:
        """The cgroup directory in the hierarchy holding ``controller``: its own mount,
        or a co-mounted one ("net_cls,net_prio", "cpu,cpuacct")."""
        directory = self.dirs.get(controller)
        if directory is not None:
            return directory
        for name, candidate in self.dirs.items():
            if controller in name.split(","):
                return candidate
        return None

    def _present(self, controller: str, file: str) -> bool:
        directory = self._dir(controller)
        return directory is not None and os.path.exists(os.path.join(directory, file))

    def set(self, resources: Resources, extra_devices: tuple[str, ...] = ()) -> None:
        for write in plan_v1(resources, extra_devices, self._present):
            directory = self._dir(write.controller)
            if directory is None:
                where = f"linux.resources.{write.field}" if write.field else "cgroup"
                raise InvalidSpec(f"{where}: the {write.controller} cgroup controller is not "
                                  "mounted on this host")
            swap_file = write.file == "memory.memsw.limit_in_bytes"
            if swap_file and not os.path.exists(os.path.join(directory, write.file)):
                continue  # swap accounting is off on this kernel: nothing to limit
            common.write(directory, write.file, write.value, write.field)

    def add(self, pid: int) -> None:
        for directory in self.dirs.values():
            common.write(directory, "cgroup.procs", str(pid))

    def mount_paths(self) -> dict[str, str]:
        return dict(self.dirs)

    def _procs_dir(self) -> str:
        for name in ("pids", "freezer", "memory", "cpu"):
            if name in self.dirs:
                return self.dirs[name]
        return next(iter(self.dirs.values()))

    def pids(self) -> list[int]:
        return common.read_pids(self._procs_dir())

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def _set_freezer(self, state: str) -> None:
        directory = self.dirs.get("freezer")
        if directory is None:
            raise InvalidSpec("cgroup: the freezer controller is not mounted")
        for _ in range(1000):
            common.write(directory, "freezer.state", state)
            if common.read(directory, "freezer.state").strip() == state:
                return
            time.sleep(0.001)
        raise InvalidSpec(f"cgroup: freezer did not reach {state}")

    def is_frozen(self) -> bool:
        return cgroup_peek.frozen(self.to_dict())

    def exists(self) -> bool:
        return any(os.path.exists(d) for d in self.dirs.values())

    def destroy(self) -> None:
        for directory in self.dirs.values():
            common.remove_tree(directory)

    def to_dict(self) -> dict[str, object]:
        return {"version": 1, "root": self.root, "dirs": dict(self.dirs)}
