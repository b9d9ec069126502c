"""Container records under the runtime root, and the status derived from the kernel.

Status is never stored, only computed, so it cannot go stale: a live init (same pid
*and* same start time, to survive pid reuse) with the exec fifo still present is
``created``; a frozen cgroup is ``paused``; a live init is ``running``; anything
else is ``stopped``.  ``can_*`` guards say which operations a status allows, with
runc's wording for refusals.
"""

from __future__ import annotations

import fcntl
import os
import time

from dockyard import jsonlite
from dockyard.errors import AlreadyExists, Conflict, InvalidArgument
from dockyard.errors import RuntimeContainerNotFound as ContainerNotFound
from dockyard.runtime import OCI_VERSION
from dockyard.runtime.linux import cgroup_peek
from dockyard.stdlite import TYPE_CHECKING, NamedTuple, suppress
from dockyard.store.atomic import atomic_write

if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

    from dockyard.runtime.linux import cgroups

STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"


def validate_id(container_id: str) -> None:
    # runc's rule, ^[\w+\-.]+$, without re: a word character is alphanumeric or "_"
    if not container_id or container_id in (".", "..") or not all(
            char.isalnum() or char in "_+-." for char in container_id):
        raise InvalidArgument(f"invalid container id format: {container_id!r}")


def now_rfc3339() -> str:
    """UTC time with nanoseconds, as runc writes ``created``."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone or a zombie."""
    from dockyard.supervise.process import start_time  # the one parser of /proc/PID/stat

    return start_time(pid)


class ContainerRecord(NamedTuple):
    id: str
    bundle: str
    rootfs: str
    created: str
    pid: int = 0
    pid_start: int = 0
    annotations: dict[str, str] = {}  # noqa: RUF012 - records are never mutated
    cgroup: dict[str, object] = {}  # noqa: RUF012
    config: dict[str, Any] = {}  # noqa: RUF012
    owner: str = ""
    # (mount id, mount point) of the mounts a container without a mount namespace of
    # its own made in the runtime's; removed with the container
    host_mounts: tuple[tuple[int, str], ...] = ()

    def cgroup_manager(self) -> cgroups.CgroupManager:
        from dockyard.runtime.linux import cgroups  # ~3 ms of imports: not for state

        return cgroups.from_dict(self.cgroup)


class ContainerDir:
    """One container's directory: record, exec fifo, lock."""

    def __init__(self, root: StrPath, container_id: str) -> None:
        validate_id(container_id)
        self.id = container_id
        self.path = os.path.join(root, container_id)  # str paths: no pathlib on this path

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, FIFO_NAME)

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self.path, STATE_FILE))

    def make(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.path, mode=0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id exists: {self.id}") from None

    def lock(self) -> int:
        """An exclusive flock held until the returned fd is closed."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def save(self, record: ContainerRecord) -> None:
        atomic_write(os.path.join(self.path, STATE_FILE), jsonlite.dumps(record._asdict()).encode(),
                     durable=False)

    def load(self) -> ContainerRecord:
        try:
            with open(os.path.join(self.path, STATE_FILE), "rb") as handle:
                data = jsonlite.loads(handle.read())
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        return ContainerRecord(**data)

    def remove(self) -> None:
        """Remove the record's directory (flat: state file, fifo, temp files)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(self.path, name))
        with suppress(FileNotFoundError):
            os.rmdir(self.path)


def status_of(cdir: ContainerDir, record: ContainerRecord) -> str:
    if record.pid <= 0 or process_start_time(record.pid) != record.pid_start:
        return "stopped"
    if os.path.exists(cdir.fifo):
        return "created"
    if record.cgroup and cgroup_peek.frozen(record.cgroup):
        return "paused"
    return "running"


def state_json(cdir: ContainerDir, record: ContainerRecord) -> dict[str, object]:
    """The OCI state document (``runc state`` output and hooks' stdin)."""
    status = status_of(cdir, record)
    state: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "id": record.id,
        "pid": record.pid if status != "stopped" else 0,
        "status": status,
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": record.owner,
    }
    if record.annotations:
        state["annotations"] = record.annotations
    return state


def can_start(status: str) -> None:
    if status == "stopped":
        raise Conflict("cannot start a container that has stopped")
    if status != "created":
        raise Conflict(f"cannot start an already {status} container")


def can_kill(status: str) -> None:
    if status == "stopped":
        raise Conflict("container not running")


def can_exec(status: str) -> None:
    if status in ("stopped", "paused"):
        raise Conflict(f"cannot exec in a {status} container")


def can_pause(status: str) -> None:
    if status != "running":
        raise Conflict(f"container not running: {status}")


def can_resume(status: str) -> None:
    if status != "paused":
        raise Conflict("container not paused")


def list_ids(root: StrPath) -> list[str]:
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name for name in names
                  if os.path.exists(os.path.join(root, name, STATE_FILE)))
