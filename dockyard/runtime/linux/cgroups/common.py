"""What both cgroup managers share: file I/O with clear errors, hierarchy discovery.

Directories are ``str`` (a ``Path`` is taken too), joined with ``os.path``: the
runtime's every create goes through here, and does not import ``pathlib``."""

from __future__ import annotations

import errno
import os
import time

from dockyard.errors import InvalidSpec, KernelError
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import StrPath


def contained(root: str, *parts: str) -> str:
    """``parts`` joined under ``root`` as runc's CleanPath does: cleaned as if ``root``
    were "/", so no ".." of a config's ``cgroupsPath`` reaches above it."""
    inner = os.path.normpath("/" + "/".join(parts)).lstrip("/")  # (normpath keeps "//")
    return os.path.join(os.path.normpath(root), inner) if inner else os.path.normpath(root)


def write(directory: StrPath, name: str, value: str, field: str = "") -> None:
    """Write one value; errors name the spec field it came from (``field``, a path
    under linux.resources) when there is one."""
    path = os.path.join(directory, name)
    where = f"linux.resources.{field}" if field else "cgroup"
    try:
        # no O_CREAT (as runc's openat2): a file the kernel lacks is ENOENT, not the
        # EACCES cgroupfs answers an attempt to create one with
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except FileNotFoundError as exc:
        raise InvalidSpec(f"{where}: {name} is not supported by this kernel ({path})") from exc
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EOPNOTSUPP and name in ("blkio.bfq.weight_device",
                                                      "io.bfq.weight"):
            hint = " (a per-device weight needs the BFQ scheduler on that disk)"
        raise InvalidSpec(f"{where}: cannot write {value!r} to {path}: "
                          f"{exc.strerror}{hint}") from exc


def read(directory: StrPath, name: str) -> str:
    path = os.path.join(directory, name)
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as exc:
        raise KernelError("read", path, exc.errno or 0,
                          exc.strerror or str(exc)) from exc


def read_pids(directory: StrPath) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split()]


def remove_tree(directory: StrPath) -> None:
    """rmdir a cgroup and its children, deepest first, retrying briefly on EBUSY.

    A cgroup whose last process just exited can stay busy for a few milliseconds.
    """
    if not os.path.exists(directory):
        return
    for sub, _dirs, _files in sorted(os.walk(os.fspath(directory)), key=lambda w: -len(w[0])):
        for attempt in range(100):
            try:
                os.rmdir(sub)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == 99:
                    raise KernelError("rmdir", sub, exc.errno or 0, exc.strerror or "") from exc
                time.sleep(0.01)


def cgroup_mounts(root: StrPath) -> dict[str, str]:
    """Mount points under ``root`` that are cgroup filesystems: dir name -> fstype."""
    found: dict[str, str] = {}
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            mountpoint = left.split()[4]
            fstype = right.split()[0]
            if fstype in ("cgroup", "cgroup2"):
                if mountpoint == str(root).rstrip("/"):
                    found[""] = fstype
                elif mountpoint.startswith(prefix) and "/" not in mountpoint[len(prefix):]:
                    found[mountpoint[len(prefix):]] = fstype
    return found


def own_cgroups(pid: int | str = "self") -> dict[str, str]:
    """This process's cgroup per hierarchy, keyed by the usual mount-dir name."""
    result: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as handle:
        for line in handle:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":
                result["unified"] = path
                result[""] = path
            else:
                result[controllers.removeprefix("name=")] = path
    return result
