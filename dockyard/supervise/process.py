"""Processes dockyard did not just fork: identified by pid *and* start time.

A pid alone is not an identity: it is reused after its process dies, and 0 (or a
negative number) given to kill(2) means a whole process group.  Every signal the
engine or a supervisor sends to a container's init or to a supervisor goes through
``send_signal``, which refuses anything but a positive pid whose start time (field
22 of ``/proc/PID/stat``) matches the one recorded when it started, and signals
through a pidfd opened *before* that check, so the process checked is the process
signalled.

``pause_at`` is a test hook (fault injection): with ``DOCKYARD_TEST_PAUSE_AT`` naming
a phase (see the callers), the process reaching it writes ``pause-PHASE`` (JSON:
its pid and details) into the directory it is given, then waits until that file is
deleted — so a test can kill -9 it at exactly that point, or let it go on.
"""

from __future__ import annotations

import os
import select
import time

from dockyard import jsonlite
from dockyard.stdlite import TYPE_CHECKING, posix_signal, suppress

if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

PAUSE_ENV = "DOCKYARD_TEST_PAUSE_AT"


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None if the process is
    gone or a zombie (or ``pid`` is not a real pid)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, start: int) -> bool:
    """``pid`` runs and is the process that started at ``start`` (0: not recorded, which
    only an old record has: the pid alone is then trusted)."""
    now = start_time(pid)
    return now is not None and (start == 0 or now == start)


def open_verified(pid: int, start: int) -> int | None:
    """A pidfd for the recorded process, or None if it is gone (or was never recorded)."""
    if pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    if is_alive(pid, start):  # checked after opening: the pidfd is the process checked
        return pidfd
    os.close(pidfd)
    return None


def send_signal(pid: int, start: int, sig: int) -> bool:
    """Signal the recorded process; False (and nothing sent) if it is not that one."""
    pidfd = open_verified(pid, start)
    if pidfd is None:
        return False
    try:
        posix_signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)
    return True


def wait_exit(pid: int, start: int, timeout: float | None) -> bool:
    """Until the recorded process has exited (True) or ``timeout`` passed (False)."""
    pidfd = open_verified(pid, start)
    if pidfd is None:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


def pause_at(phase: str, directory: StrPath, wanted: str | None = None,
             **details: Any) -> None:
    """The fault-injection hook described above; a no-op unless ``phase`` is wanted
    (``wanted``: a comma-separated list, default the environment's)."""
    phases = (os.environ.get(PAUSE_ENV, "") if wanted is None else wanted).split(",")
    if phase not in phases:
        return
    marker = os.path.join(directory, f"pause-{phase}")
    with suppress(OSError):
        partial = os.path.join(directory, f".pause-{phase}.tmp")
        with open(partial, "w") as handle:
            handle.write(jsonlite.dumps({"pid": os.getpid(), **details}))
        os.rename(partial, marker)  # whole, or not there at all
        while os.path.exists(marker):
            time.sleep(0.01)


def read_answer(fd: int, pid: int, *, past_line: bool = True) -> str:
    """One line from ``fd`` (a pipe, or socket, ``pid`` answers on), or "" once ``pid`` is gone
    without one: never wait on the pipe alone, which another process may hold.
    ``past_line`` False: not a byte past the line's end is read (a socket whose
    next bytes are someone else's to read)."""
    size = 4096 if past_line else 1
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    data = b""
    try:
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd, *([pidfd] if pidfd >= 0 else [])], [], [])
            if fd in ready:
                try:
                    chunk = os.read(fd, size)
                except ConnectionResetError:  # (a socket's peer died with unread input)
                    chunk = b""
                if not chunk:
                    break
                data += chunk
            else:  # it exited: what it wrote is in the pipe already
                os.set_blocking(fd, False)
                with suppress(BlockingIOError, ConnectionResetError):
                    while not data.endswith(b"\n") and (chunk := os.read(fd, size)):
                        data += chunk
                break
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return data.decode(errors="replace").strip()


_PR_SET_NAME, _PR_GET_NAME = 15, 16


def rename(name: str) -> str:
    """Set this process's name (comm, 15 bytes at most: what ``ps`` shows, e.g. a
    waiting spare, an exit hook); the name it had."""
    import ctypes  # (~1.5 ms: not for the runtime's state and start, which import this)

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    before = ctypes.create_string_buffer(16)
    prctl(_PR_GET_NAME, before, 0, 0, 0)
    prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    return before.value.decode(errors="replace")
