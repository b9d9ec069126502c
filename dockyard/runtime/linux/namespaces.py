"""Which namespaces a container gets: a pure plan, applied by the init stage.

A namespace with a ``path`` is joined with setns(2); one without is created with
unshare(2).  The pid namespace is special: both only take effect for children, so
the parent stage handles it around its fork (see ``runtime.create``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from dockyard.errors import InvalidSpec, NotImplementedFeature
from dockyard.oci.runtime_spec import Linux
from dockyard.runtime.linux import syscalls

CLONE_FLAGS: dict[str, int] = {
    "pid": syscalls.CLONE_NEWPID,
    "network": syscalls.CLONE_NEWNET,
    "mount": syscalls.CLONE_NEWNS,
    "ipc": syscalls.CLONE_NEWIPC,
    "uts": syscalls.CLONE_NEWUTS,
    "user": syscalls.CLONE_NEWUSER,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "time": syscalls.CLONE_NEWTIME,
}

# /proc/<pid>/ns/<name> for each spec type
PROC_NAMES: dict[str, str] = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}

# setns order: user first would matter with user namespaces; mount last so that
# the paths of the other namespaces are still resolvable in the runtime's mount ns.
_JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "pid", "mount")


class NamespacePlan(NamedTuple):
    unshare_flags: int  # new namespaces other than pid
    new_pid: bool
    joins: tuple[tuple[str, str], ...]  # (type, path) in setns order; pid excluded
    join_pid: str  # path of a pid namespace to join, or ""


def plan(linux: Linux) -> NamespacePlan:
    flags = 0
    joins: list[tuple[str, str]] = []
    new_pid = False
    join_pid = ""
    for ns in linux.namespaces:
        if ns.type == "user":
            raise NotImplementedFeature("linux.namespaces: user namespaces are not supported "
                                        "by dockyard-runtime yet")
        if ns.type == "pid":
            new_pid, join_pid = (not ns.path), ns.path
            continue
        if ns.path:
            joins.append((ns.type, ns.path))
        else:
            flags |= CLONE_FLAGS[ns.type]
    joins.sort(key=lambda item: _JOIN_ORDER.index(item[0]))
    return NamespacePlan(flags, new_pid, tuple(joins), join_pid)


def check_paths(ns_plan: NamespacePlan) -> None:
    """Refuse a namespace path that is not a namespace before anything is created."""
    items = list(ns_plan.joins) + ([("pid", ns_plan.join_pid)] if ns_plan.join_pid else [])
    for ns_type, path in items:
        if not os.path.exists(path):
            raise InvalidSpec(f"linux.namespaces: {ns_type} namespace path {path!r} does not exist")


def join(ns_type: str, path: str) -> None:
    fd = syscalls.os_call("open", path, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    assert isinstance(fd, int)
    try:
        syscalls.setns(fd, CLONE_FLAGS[ns_type], path)
    finally:
        os.close(fd)
