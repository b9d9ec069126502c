"""User namespaces: the mappings checked (pure), written by the parent, and used.

runc's order: the init's first stage joins the namespaces given by path (user
first), unshares a new user namespace and waits while the runtime writes its
``uid_map`` and ``gid_map`` (a privileged runtime leaves ``setgroups`` allowed, as
runc does; an unprivileged one must deny it before writing ``gid_map``), then
becomes root of the namespace and unshares the rest, so every namespace it makes
is owned by the new user namespace (see ``runtime.init``).
"""

from __future__ import annotations

import errno
import os

from dockyard.errors import InvalidSpec, KernelError
from dockyard.oci.runtime_spec import IdMapping, Linux, Process
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:  # (collections, which collections.abc imports first: ~1.7 ms)
    from collections.abc import Callable, Sequence

MAX_ID = 2**32 - 2  # (uid_t)-1 is "no id"
MAX_LINES = 340  # the kernel's limit on lines in a map (since 4.15)


def check(linux: Linux, process: Process | None) -> None:
    """Everything about the mappings that can be refused before a process exists."""
    user = linux.namespace("user")
    kinds = (("uid", linux.uid_mappings), ("gid", linux.gid_mappings))
    if user is None:
        for kind, mappings in kinds:
            if mappings:
                raise InvalidSpec(f"linux.{kind}Mappings: given without a user namespace "
                                  '(add {"type": "user"} to linux.namespaces)')
        return
    if linux.namespace("mount") is None:
        raise InvalidSpec("linux.namespaces: a user namespace needs a mount namespace (the "
                          "mapped root cannot mount in the runtime's)")
    for kind, mappings in kinds:
        _check_ranges(kind, mappings)
    if user.path and not (linux.uid_mappings or linux.gid_mappings):
        return  # the joined namespace's own mappings apply; checked once joined
    for kind, mappings in kinds:
        if not mappings:
            raise InvalidSpec(f"linux.{kind}Mappings: user namespaces enabled, but no "
                              f"{kind} mappings found")
        if not is_mapped(0, mappings):
            raise InvalidSpec(f"linux.{kind}Mappings: no mapping for {kind} 0 (the "
                              "container's root)")
    if process is not None:
        _check_process_user(process, linux)


def _check_ranges(kind: str, mappings: Sequence[IdMapping]) -> None:
    where = f"linux.{kind}Mappings"
    if len(mappings) > MAX_LINES:
        raise InvalidSpec(f"{where}: {len(mappings)} mappings, the kernel takes at most "
                          f"{MAX_LINES}")
    for index, mapping in enumerate(mappings):
        if mapping.size < 1:
            raise InvalidSpec(f"{where}[{index}].size: must be at least 1")
        for side, first in (("container", mapping.container_id), ("host", mapping.host_id)):
            last = first + mapping.size - 1
            if first < 0:
                raise InvalidSpec(f"{where}[{index}]: {side} IDs cannot be negative")
            if last > MAX_ID:
                raise InvalidSpec(f"{where}[{index}]: {side} IDs {first}-{last} go past "
                                  f"{MAX_ID}")
        for other_index, other in enumerate(mappings[:index]):
            for side, mine, theirs in (("container", mapping.container_id, other.container_id),
                                       ("host", mapping.host_id, other.host_id)):
                if mine < theirs + other.size and theirs < mine + mapping.size:
                    raise InvalidSpec(
                        f"{where}[{index}]: {side} IDs {mine}-{mine + mapping.size - 1} "
                        f"overlap those of {where}[{other_index}] "
                        f"({theirs}-{theirs + other.size - 1})")


def _check_process_user(process: Process, linux: Linux) -> None:
    user = process.user
    if not is_mapped(user.uid, linux.uid_mappings):
        raise InvalidSpec("process.user.uid: cannot set uid to unmapped user in user "
                          f"namespace ({user.uid} is not in linux.uidMappings)")
    if not is_mapped(user.gid, linux.gid_mappings):
        raise InvalidSpec("process.user.gid: cannot set gid to unmapped user in user "
                          f"namespace ({user.gid} is not in linux.gidMappings)")
    for gid in user.additional_gids:
        if not is_mapped(gid, linux.gid_mappings):
            raise InvalidSpec(f"process.user.additionalGids: gid {gid} is not mapped in "
                              "the user namespace (linux.gidMappings)")


def is_mapped(container_id: int, mappings: Sequence[IdMapping]) -> bool:
    return any(m.container_id <= container_id < m.container_id + m.size for m in mappings)


def map_text(mappings: Sequence[IdMapping]) -> str:
    """The contents of a uid_map/gid_map file (written in one write(2))."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def parse_map(text: str) -> tuple[IdMapping, ...]:
    """/proc/PID/uid_map as its reader sees it (inside: relative to the parent)."""
    result = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            result.append(IdMapping(int(fields[0]), int(fields[1]), int(fields[2])))
    return tuple(result)


def write_mappings(pid: int, linux: Linux) -> None:
    """The parent's part: map the first stage ``pid``'s new user namespace."""
    if os.geteuid() != 0:  # an unprivileged writer may only map with setgroups denied
        _write(pid, "setgroups", "deny")
    _write(pid, "uid_map", map_text(linux.uid_mappings))
    _write(pid, "gid_map", map_text(linux.gid_mappings))


def _write(pid: int, name: str, text: str) -> None:
    path = f"/proc/{pid}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise KernelError("write", path, exc.errno or 0, exc.strerror or str(exc)) from exc


def check_joined(linux: Linux, path: str) -> None:
    """In the first stage, right after joining the namespace at ``path``: the mappings
    a config gives with a path must be that namespace's own (runc 1.2's rule)."""
    for kind, wanted in (("uid", linux.uid_mappings), ("gid", linux.gid_mappings)):
        if not wanted:
            continue
        with open(f"/proc/self/{kind}_map") as handle:
            actual = parse_map(handle.read())
        if sorted(actual) != sorted(wanted):
            shown = "; ".join(" ".join(map(str, m)) for m in actual) or "nothing"
            raise InvalidSpec(f"linux.{kind}Mappings: do not match the user namespace "
                              f"joined at {path} (it maps {shown})")


def setgroups_allowed() -> bool:
    """False in a user namespace whose ``setgroups`` is "deny" (setgroups(2) fails)."""
    try:
        with open("/proc/self/setgroups") as handle:
            return handle.read().strip() != "deny"
    except OSError:
        return True


def become_root() -> None:
    """uid and gid 0 of the user namespace just joined (``exec``)."""
    become_root_user()
    become_root_group()


def become_root_user() -> None:
    """uid 0 of the user namespace just made or joined (runc's first stage: the
    group follows in the init, so the namespaces unshared in between -- the mqueue
    root of a new ipc namespace -- carry the runtime's group, as under runc)."""
    _as_root("uid", lambda: os.setresuid(0, 0, 0))


def become_root_group() -> None:
    def switch() -> None:
        os.setresgid(0, 0, 0)
        if setgroups_allowed():
            os.setgroups([])

    _as_root("gid", switch)


def _as_root(kind: str, switch: Callable[[], None]) -> None:
    try:
        switch()
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise InvalidSpec(f"user namespace: its root ({kind} 0) is not mapped") from exc
        raise KernelError(f"set{kind}", "0", exc.errno or 0, exc.strerror or str(exc)) from exc
