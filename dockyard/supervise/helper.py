"""Work done in a throw-away fork of the supervisor.

A supervisor shares most of its memory with the zygote and its siblings; code it
runs only once per start (the runtime's create, netlink setup) would touch and
un-share pages for the rest of the container's life.  Run in a short-lived fork,
those pages go away with the fork.

A fork is where a container's init comes from, so it first closes the supervisor's
private descriptors (``keep_out_of_forks``: the CLI's ready pipe): an init waiting
to be started must never hold the pipe a CLI reads, or the CLI would wait for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
from collections.abc import Callable
from typing import Any

from dockyard.errors import DockyardError

_PRIVATE_FDS: set[int] = set()


def keep_out_of_forks(fd: int) -> None:
    _PRIVATE_FDS.add(fd)


def release(fd: int) -> None:
    """``fd`` is about to be closed by its owner: no longer ours to close in forks."""
    _PRIVATE_FDS.discard(fd)


def run_in_fork(work: Callable[[], int]) -> int:
    """Run ``work`` in a forked child; its int result comes back, or RuntimeError(message)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:  # never unwind into the parent's code: a dead parent's pipe is an EPIPE
            os.close(read_fd)
            _run_child(work, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        data = _answer(read_fd, pid)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data or b'{"error": "helper died"}')
    if "error" in result:
        raise RuntimeError(str(result["error"]))
    return int(result["value"])


def _run_child(work: Callable[[], int], write_fd: int) -> None:
    for fd in _PRIVATE_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)
    answer: dict[str, object]
    try:
        answer = {"value": work()}
    except DockyardError as exc:
        answer = {"error": exc.message}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    with contextlib.suppress(OSError):
        os.write(write_fd, json.dumps(answer).encode() + b"\n")


def _answer(read_fd: int, pid: int) -> bytes:
    """One line, not "until EOF" (a process the helper forks may keep a copy of the
    pipe), and not past the helper's death (then that process may hold it for ever)."""
    pidfd = os.pidfd_open(pid)
    data = b""
    try:
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([read_fd, pidfd], [], [])
            if read_fd in ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                data += chunk
            elif pidfd in ready:  # exited: what it wrote is in the pipe already
                os.set_blocking(read_fd, False)
                with contextlib.suppress(BlockingIOError):
                    while not data.endswith(b"\n") and (chunk := os.read(read_fd, 65536)):
                        data += chunk
                break
    finally:
        os.close(pidfd)
    return data
