"""Which namespaces a container gets: a pure plan, applied by the init stage.

A namespace with a ``path`` is joined with setns(2); one without is created with
unshare(2).  The pid namespace is special: both only take effect for children, so
the parent stage handles it around its fork (see ``runtime.create``) -- unless a
user namespace is involved: then the init's first stage joins and creates them
all, user first, and forks the init itself (see ``runtime.init``).
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidSpec
from dockyard.oci.runtime_spec import Linux
from dockyard.runtime.linux import syscalls
from dockyard.stdlite import NamedTuple

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

# setns order (runc's): user first, so that the joins after it are checked against
# the capabilities it grants; mount last, as it moves root and cwd.
_JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "pid", "mount")


class NamespacePlan(NamedTuple):
    unshare_flags: int  # new namespaces other than pid and user
    new_pid: bool
    joins: tuple[tuple[str, str], ...]  # (type, path) in setns order; pid excluded
    join_pid: str  # path of a pid namespace to join, or ""
    new_user: bool = False

    @property
    def has_user_namespace(self) -> bool:
        """A new or joined user namespace: the init is made in two stages."""
        return self.new_user or any(ns_type == "user" for ns_type, _path in self.joins)

    @property
    def join_user(self) -> str:
        return next((path for ns_type, path in self.joins if ns_type == "user"), "")

    def all_joins(self) -> list[tuple[str, str]]:
        """Every join, pid included, in setns order (for a first stage that forks)."""
        items = list(self.joins) + ([("pid", self.join_pid)] if self.join_pid else [])
        return sorted(items, key=lambda item: _JOIN_ORDER.index(item[0]))

    @property
    def own_mount_namespace(self) -> bool:
        """A new or joined mount namespace: the container's, set up and pivoted into.
        Without one the container shares the runtime's."""
        return bool(self.unshare_flags & syscalls.CLONE_NEWNS) or any(
            ns_type == "mount" for ns_type, _path in self.joins)


def plan(linux: Linux) -> NamespacePlan:
    flags = 0
    joins: list[tuple[str, str]] = []
    new_pid = new_user = False
    join_pid = ""
    for ns in linux.namespaces:
        if ns.type == "user" and not ns.path:
            new_user = True
            continue
        if ns.type == "pid":
            new_pid, join_pid = (not ns.path), ns.path
            continue
        if ns.path:
            joins.append((ns.type, ns.path))
        else:
            flags |= CLONE_FLAGS[ns.type]
    joins.sort(key=lambda item: _JOIN_ORDER.index(item[0]))
    return NamespacePlan(flags, new_pid, tuple(joins), join_pid, new_user)


def check_paths(ns_plan: NamespacePlan) -> None:
    """Refuse a namespace path that is not a namespace before anything is created."""
    items = list(ns_plan.joins) + ([("pid", ns_plan.join_pid)] if ns_plan.join_pid else [])
    for ns_type, path in items:
        if not os.path.exists(path):
            raise InvalidSpec(f"linux.namespaces: {ns_type} namespace path {path!r} does not exist")


def fork_in_pid_namespace(*, new: bool = False, join_path: str = "") -> int:
    """fork(2) with the child in a new or joined pid namespace (or ours if neither).

    unshare/setns of a pid namespace only affect later children, so the caller
    moves its "pid namespace for children" around the one fork and back at once:
    there is one fork, not runc's re-exec and double fork, and the runtime's own
    later children (hooks) stay in its namespace.
    """
    saved = -1
    if new or join_path:
        saved = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        if new:
            syscalls.unshare(syscalls.CLONE_NEWPID)
        else:
            join("pid", join_path)
    try:
        pid = os.fork()
    except BaseException:
        _restore_pid_namespace(saved)
        raise
    if pid != 0:
        _restore_pid_namespace(saved)
    return pid


def _restore_pid_namespace(saved: int) -> None:
    if saved >= 0:
        syscalls.setns(saved, syscalls.CLONE_NEWPID, "/proc/self/ns/pid")
        os.close(saved)


def join(ns_type: str, path: str) -> None:
    fd = syscalls.os_call("open", path, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    assert isinstance(fd, int)
    try:
        syscalls.setns(fd, CLONE_FLAGS[ns_type], path)
    finally:
        os.close(fd)


def open_all(items: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """Descriptors of every namespace to join, opened before the first setns (runc's
    rule: once a user or mount namespace is joined, the paths may be out of reach)."""
    opened: list[tuple[str, str, int]] = []
    try:
        for ns_type, path in items:
            fd = syscalls.os_call("open", path, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
            assert isinstance(fd, int)
            opened.append((ns_type, path, fd))
    except BaseException:
        for _type, _path, fd in opened:
            os.close(fd)
        raise
    return opened


def join_opened(opened: list[tuple[str, str, int]]) -> None:
    """setns into each opened namespace, in order, closing the descriptors."""
    try:
        for ns_type, path, fd in opened:
            syscalls.setns(fd, CLONE_FLAGS[ns_type], path)
    finally:
        for _type, _path, fd in opened:
            os.close(fd)
