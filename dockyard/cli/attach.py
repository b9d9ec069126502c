"""The client side of a container's attach socket: this terminal <-> the container.

With a TTY the local terminal goes raw and window size changes are sent as
``resize`` requests; output arrives in Docker's stdcopy frames (a TTY's all as
stdout) and is split back into stdout and stderr, and local EOF on stdin closes the
container's stdin.  The supervisor sends the output as it reads it from the
container's stdio (the json-file log is written beside, never read here), and then
the exit code (``attach exit``, see ``supervise.iohub``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from dockyard.engine.attach_socket import Frames
from dockyard.engine.attach_socket import connect as connect_attach
from dockyard.stdcopy import EXIT_STREAM, split_frame


def _connect(bundle: Path, first_line: str) -> socket.socket:
    return connect_attach(bundle, first_line)


def _send_size(bundle: Path) -> None:
    with contextlib.suppress(OSError):
        packed = fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, cols, _, _ = struct.unpack("HHHH", packed)
        _connect(bundle, f"resize {rows} {cols}").close()


def attaches_at_start(tty_mode: bool) -> bool:
    """Whether a foreground run may be attached by the start itself (the engine's
    ``start(attach_here=…)``): not on an interactive terminal, whose size must reach
    the supervisor before the attach that starts the container."""
    return not (tty_mode and os.isatty(sys.stdin.fileno()))


def attach(bundle: Path, *, tty_mode: bool, stdin: bool,
           connected: socket.socket | None = None,
           after_exit: Callable[[Frames], object] | None = None) -> int | None:
    """Until the container's output ends; its exit code, or None when the supervisor
    went away without one (it died, or the container never ran): the caller then
    asks the record.  ``connected``: attached already (``attach exit`` sent).
    ``after_exit``: called with the connection's frames once the exit code came, before
    the connection closes (a foreground ``run --rm`` that took the exit hook over:
    ``attach exit hook``, see ``supervise.iohub``)."""
    stdin_fd = sys.stdin.fileno() if stdin or tty_mode else -1
    saved = None
    interactive_tty = tty_mode and os.isatty(stdin_fd)
    if interactive_tty and connected is None:
        _send_size(bundle)  # before attaching: the container starts once we attach
    try:
        sock = connected or _connect(bundle, "attach exit")
    except OSError:  # no supervisor serves the socket (any more)
        return None
    if interactive_tty:
        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)

        def on_winch(_sig: int, _frame: FrameType | None) -> None:
            _send_size(bundle)

        signal.signal(signal.SIGWINCH, on_winch)
    try:
        demux = _pump(sock, stdin_fd if stdin else None, stop_at_exit=after_exit is not None)
        if after_exit is not None and demux.exit_code is not None:
            after_exit(Frames(sock, demux.buffer))
        return demux.exit_code
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        sock.close()


def _pump(sock: socket.socket, stdin_fd: int | None, *, stop_at_exit: bool) -> _Demux:
    """Until the connection ends (or, ``stop_at_exit``, the exit code came: what was
    read past it is left in the buffer)."""
    watch: list[int | socket.socket] = [sock] + ([stdin_fd] if stdin_fd is not None else [])
    demux = _Demux(stop_at_exit)
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if stdin_fd is not None and stdin_fd in ready:
            data = os.read(stdin_fd, 65536)
            with contextlib.suppress(OSError):  # a supervisor gone shows on the socket
                if data:
                    sock.sendall(data)
                else:
                    watch.remove(stdin_fd)
                    sock.shutdown(socket.SHUT_WR)
        if sock in ready:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return demux
            demux.feed(data)
            if stop_at_exit and demux.exit_code is not None:
                return demux


class _Demux:
    """stdcopy frames to stdout and stderr; the exit frame's code kept (and, when
    ``stop_at_exit``, nothing after it read: left in the buffer)."""

    def __init__(self, stop_at_exit: bool = False) -> None:
        self.buffer = b""
        self.exit_code: int | None = None
        self.stop_at_exit = stop_at_exit

    def feed(self, data: bytes) -> None:
        buffer = self.buffer + data
        while not (self.stop_at_exit and self.exit_code is not None):
            split = split_frame(buffer)
            if split is None:
                break
            stream, payload, buffer = split
            if stream == EXIT_STREAM:
                self.exit_code = int(payload)
                continue
            _write_all(sys.stdout.fileno() if stream == 1 else sys.stderr.fileno(), payload)
        self.buffer = buffer


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
