"""Work done inside another process's network namespace, by the calling thread.

setns(2) with CLONE_NEWNET moves only the calling thread, and a socket stays in the
namespace it was made in: the thread joins the namespace, makes its sockets, and goes
back to its own namespace; the rest of the process never moves.  A fork would do too,
but it copies the page tables of the whole caller and costs ~5-9 ms of a container's
start; a thread of its own adds a start and a join (its stack and malloc arena stay
with the process).  The attach runs in the runtime's create helper, a fork that
ends right after (``supervise.monitor``), so what this code writes of the shared
pages is not kept by the supervisor.  Signals are blocked while
the thread is away: a Python handler run meanwhile would make its sockets in the
container's namespace.  A thread that cannot go back ends the process: nothing it
did afterwards would be where it belongs.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)  # (loaded once, in the zygote)


def _setns(fd: int, path: str) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNET)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns {path}: {os.strerror(code)}")


def in_netns_of(pid: int, work: Callable[[], T]) -> T:
    """``work()`` run in the network namespace of process ``pid`` by this thread,
    which is back in its own namespace when this returns or raises."""
    path = f"/proc/{pid}/ns/net"
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            try:
                _setns(target, path)
                try:
                    return work()
                finally:
                    _go_home(home)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        finally:
            os.close(home)
    finally:
        os.close(target)


def _go_home(home: int) -> None:
    try:
        _setns(home, "/proc/thread-self/ns/net")
    except OSError as exc:
        os.write(2, f"dockyard: cannot return to its own network namespace: {exc}\n"
                 .encode())
        os.abort()
