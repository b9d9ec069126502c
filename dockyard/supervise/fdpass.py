"""Passing a file descriptor over a unix socket (SCM_RIGHTS): the console-socket
protocol's one primitive, shared by the runtime (sender) and the supervisor and
tests (receivers)."""

from __future__ import annotations

import array
import socket


def send_fd(sock: socket.socket, fd: int, name: str = "/dev/ptmx") -> None:
    fds = array.array("i", [fd])
    sock.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def receive_fd(sock: socket.socket) -> int:
    fds = array.array("i")
    _msg, ancdata, _flags, _addr = sock.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            return fds[0]
    raise OSError("the peer sent no file descriptor")
