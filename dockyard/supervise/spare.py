"""The zygote's spare: a supervisor forked ahead of its request.

Forking the zygote is on the path of every container start, between the engine's
request and the supervisor's first step: ~2.5 ms on a 2-core VM (the kernel copies
the zygote's page tables, and the child faults in each page it writes first).  So
the zygote forks one child ahead, once it has been idle for a moment; a request
hands that spare its arguments and its ready descriptor (a pipe, or a foreground
run's socket) over a socket pair, by SCM_RIGHTS, and the spare becomes the
container's supervisor, as a child forked then would.  A message is one datagram
of a SOCK_SEQPACKET pair: a send larger than the socket's buffer fails (the zygote
then forks as before), so the spare's large receive buffer never truncates one.
The next spare is forked after the start, not beside it: on two cores a fork
competes with the start it would speed up.

A spare that is never used ends with the zygote: it waits on its end of the pair,
and the zygote's end closes when the zygote ends (or dies).  It is not a supervisor
the zygote watches (nothing runs in it to be re-adopted), and it does not keep the
zygote alive.  It costs one process per root, not one per container.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
from collections.abc import Callable

from dockyard.supervise.process import rename

_MAX_MESSAGE = 1 << 20  # a supervisor's arguments: a few KiB (a network's JSON, health)
SPARE_NAME = "dy-spare"  # a waiting spare's process name (comm); a supervisor has its own
_channels: set[socket.socket] = set()  # the zygote's ends of its spares' pairs


class Spare:
    """One spare child of the zygote, and the zygote's end of the pair it waits on."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel

    @classmethod
    def fork(cls, prepare: Callable[[], None],
             supervise: Callable[[list[str], int], int]) -> Spare:
        """A child that runs ``prepare`` (what a supervisor's fork does first: the
        zygote's descriptors closed, its own session), then waits for its request and
        returns ``supervise(argv, ready_fd)`` as its exit code; it exits 0 unasked."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            code = 1
            try:
                close_in_child()
                ours.close()
                prepare()
                named = rename(SPARE_NAME)  # (seen in ps while it waits)
                request = _receive(theirs)
                theirs.close()
                rename(named)
                code = 0 if request is None else supervise(*request)
            finally:
                os._exit(code)
        theirs.close()
        _channels.add(ours)
        return cls(pid, ours)

    def hand(self, argv: list[str], ready_fd: int) -> bool:
        """Give the spare its request: whether it took it (False: it is gone)."""
        try:
            self.channel.sendmsg([json.dumps(argv).encode()], [
                (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [ready_fd]))])
        except OSError:
            return False
        finally:
            self.discard()
        return True

    def discard(self) -> None:
        """The spare ends unused (it sees its pair closed)."""
        _channels.discard(self.channel)
        with contextlib.suppress(OSError):
            self.channel.close()


def close_in_child() -> None:
    """In a fork of the zygote: its spares' channels are not the fork's to hold (a
    spare sees the end of its pair only once every copy is closed)."""
    for channel in _channels:
        with contextlib.suppress(OSError):
            channel.close()
    _channels.clear()


def _receive(channel: socket.socket) -> tuple[list[str], int] | None:
    """The request the zygote hands over: the arguments and the ready pipe, or None
    when the zygote closed the pair instead (or sent something malformed)."""
    fds = array.array("i")
    try:
        data, ancdata, _flags, _addr = channel.recvmsg(_MAX_MESSAGE,
                                                       socket.CMSG_LEN(fds.itemsize))
    except OSError:
        return None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    try:
        argv = json.loads(data) if data else None
    except ValueError:
        argv = None
    if not fds:
        return None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        for fd in fds:
            os.close(fd)
        return None
    os.set_inheritable(fds[0], False)
    return argv, fds[0]
