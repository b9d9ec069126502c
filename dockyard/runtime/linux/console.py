"""Terminals: a pty allocated inside the container, its master sent over a unix socket.

This is runc's ``--console-socket`` protocol: the runtime connects to the caller's
socket and sends the pty master with SCM_RIGHTS; the caller (containerd's shim,
our supervisor, a test) then owns the terminal's other end.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import ConsoleSize
from dockyard.runtime.linux import syscalls as sc
from dockyard.supervise.fdpass import receive_fd as _receive_fd
from dockyard.supervise.fdpass import send_fd


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"console socket {path}: {exc.strerror}") from exc
    return sock


def receive_fd(sock: socket.socket) -> int:
    """The receiving end of :func:`send_fd` (used by ``run -t`` and tests)."""
    try:
        return _receive_fd(sock)
    except OSError as exc:
        raise InvalidArgument("console socket: peer sent no file descriptor") from exc


def set_size(fd: int, size: ConsoleSize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def setup_in_container(sock: socket.socket, size: ConsoleSize | None, *,
                       bind_console: bool = True) -> None:
    """After pivot_root: new pty from the container's devpts, made our controlling tty."""
    master, slave = os.openpty()
    if bind_console:
        console = "/dev/console"
        if not os.path.exists(console):
            os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        sc.mount(os.ttyname(slave), console, None, sc.MS_BIND, None)
    if size is not None and size.height and size.width:
        set_size(master, size)
    send_fd(sock, master)
    os.close(master)
    sock.close()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
