"""Lifecycle operations on a created container: start, kill, delete, pause, resume,
state, list, ps.  Each loads the record, checks the derived status with a
``can_*`` guard, then acts, holding the container's lock.
"""

from __future__ import annotations

import os
import select
import time

from dockyard import jsonlite
from dockyard.errors import Conflict, InternalError, InvalidArgument, RuntimeContainerNotFound
from dockyard.runtime import hooks, state
from dockyard.runtime.linux import signals
from dockyard.runtime.state import ContainerDir, ContainerRecord
from dockyard.stdlite import TYPE_CHECKING, posix_signal, suppress

if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath


def get_state(root: StrPath, container_id: str) -> dict[str, object]:
    cdir = ContainerDir(root, container_id)
    return state.state_json(cdir, cdir.load())


def start(root: StrPath, container_id: str) -> None:
    cdir = ContainerDir(root, container_id)
    record = cdir.load()
    state.can_start(state.status_of(cdir, record))
    _release_init(cdir, record.pid)
    poststart: Any = ()
    if (record.config.get("hooks") or {}).get("poststart"):  # (parsed only when there)
        from dockyard.oci.runtime_spec import parse_spec  # not for state, kill, list

        poststart = parse_spec(record.config).hooks.get("poststart", ())
    if poststart:
        try:
            hooks.run_hooks(poststart, state.state_json(cdir, record), "poststart")
        except Exception as exc:  # noqa: BLE001 - the spec says warn and carry on
            _warn(f"poststart hook failed: {exc}")


def start_created(root: StrPath, container_id: str, pid: int) -> None:
    """``start`` of a container whose creator knows it is just created, its init
    ``pid``, and without poststart hooks (the supervisor's driver): the init released,
    and nothing else read — not the record, whose parse would touch (and un-share)
    the supervisor's memory for the container's whole life."""
    _release_init(ContainerDir(root, container_id), pid)


def _release_init(cdir: ContainerDir, pid: int) -> None:
    """Open the exec fifo for reading: the init's blocked open returns and it execs."""
    fd = os.open(cdir.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.close(fd)
        raise Conflict("cannot start a container that has stopped") from None
    try:
        while True:
            ready, _, _ = select.select([fd, pidfd], [], [], 5.0)
            if fd in ready:
                data = os.read(fd, 1)
                if data:
                    break
            if pidfd in ready:
                raise Conflict("cannot start a container that has stopped")
            time.sleep(0.0005)
    finally:
        os.close(fd)
        os.close(pidfd)
    with suppress(FileNotFoundError):
        os.unlink(cdir.fifo)


def parse_signal(value: str) -> int:
    text = value.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
        raise InvalidArgument(f"invalid signal: {value}")
    name = text if text.startswith("SIG") else "SIG" + text
    named = signals.names().get(name)
    if named is None:
        raise InvalidArgument(f"invalid signal: {value}")
    return named


def kill(root: StrPath, container_id: str, sig: int, *, all_processes: bool = False) -> None:
    cdir = ContainerDir(root, container_id)
    record = cdir.load()
    status = state.status_of(cdir, record)
    if all_processes and record.cgroup:
        manager = record.cgroup_manager()
        for pid in manager.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        if status == "paused":
            manager.thaw()
        return
    state.can_kill(status)
    os.kill(record.pid, sig)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait for a process that may not be our child to exit."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


def delete(root: StrPath, container_id: str, *, force: bool = False) -> None:
    cdir = ContainerDir(root, container_id)
    try:
        record = cdir.load()
    except RuntimeContainerNotFound:
        # as runc: a folder without its state — a create or a delete that a kill cut
        # short between the folder and the state file — is removed, else the id could
        # never be created again ("container with id exists")
        cdir.remove()
        raise
    status = state.status_of(cdir, record)
    if status in ("running", "paused") and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
    if status != "stopped":
        _kill_everything(record)
    _destroy(cdir, record)


def _kill_everything(record: ContainerRecord) -> None:
    manager = record.cgroup_manager() if record.cgroup else None
    pids = set(manager.pids()) if manager else set()
    pids.add(record.pid)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, posix_signal.SIGKILL)
    if manager is not None and manager.is_frozen():
        manager.thaw()
    if not wait_gone(record.pid, 10.0):
        raise InternalError(f"container init {record.pid} did not die after SIGKILL")
    with suppress(ChildProcessError):
        os.waitpid(record.pid, os.WNOHANG)


def _destroy(cdir: ContainerDir, record: ContainerRecord) -> None:
    if record.cgroup:
        manager = record.cgroup_manager()
        deadline = time.monotonic() + 5
        while manager.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        manager.destroy()
    if record.host_mounts:
        from dockyard.runtime.linux import rootfs

        rootfs.unmount_made([(int(i), str(point)) for i, point in record.host_mounts])
    poststop: Any = ()
    if (record.config.get("hooks") or {}).get("poststop"):  # (parsed only when there)
        from dockyard.oci.runtime_spec import parse_spec  # not for state, kill, list

        poststop = parse_spec(record.config).hooks.get("poststop", ())
    final_state = state.state_json(cdir, record)
    cdir.remove()
    if poststop:
        try:
            hooks.run_hooks(poststop, final_state, "poststop")
        except Exception as exc:  # noqa: BLE001 - the spec says warn and carry on
            _warn(f"poststop hook failed: {exc}")


def pause(root: StrPath, container_id: str) -> None:
    cdir = ContainerDir(root, container_id)
    record = cdir.load()
    state.can_pause(state.status_of(cdir, record))
    record.cgroup_manager().freeze()


def resume(root: StrPath, container_id: str) -> None:
    cdir = ContainerDir(root, container_id)
    record = cdir.load()
    state.can_resume(state.status_of(cdir, record))
    record.cgroup_manager().thaw()


def list_states(root: StrPath) -> list[dict[str, object]]:
    result = []
    for container_id in state.list_ids(root):
        with suppress(Exception):
            result.append(get_state(root, container_id))
    return result


def pids(root: StrPath, container_id: str) -> list[int]:
    cdir = ContainerDir(root, container_id)
    record = cdir.load()
    if not record.cgroup:
        return [record.pid] if state.status_of(cdir, record) != "stopped" else []
    return sorted(record.cgroup_manager().pids())


def _warn(message: str) -> None:
    from dockyard.runtime import log

    log.warning(message)


def dump(value: object) -> str:
    return jsonlite.dumps(value, indent=2)
