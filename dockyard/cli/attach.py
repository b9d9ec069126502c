"""The client side of a container's attach socket: this terminal <-> the container.

With a TTY the local terminal goes raw and bytes pass through unchanged, window
size changes are sent as ``resize`` requests; without one, output arrives in
Docker's stdcopy frames and is split back into stdout and stderr, and local EOF
on stdin closes the container's stdin.
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
from pathlib import Path
from types import FrameType


def _connect(bundle: Path, first_line: str) -> socket.socket:
    fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(f"/proc/self/fd/{fd}/attach.sock")
    finally:
        os.close(fd)
    sock.sendall(first_line.encode() + b"\n")
    return sock


def _send_size(bundle: Path) -> None:
    with contextlib.suppress(OSError):
        packed = fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, cols, _, _ = struct.unpack("HHHH", packed)
        _connect(bundle, f"resize {rows} {cols}").close()


def attach(bundle: Path, *, tty_mode: bool, stdin: bool) -> None:
    stdin_fd = sys.stdin.fileno()
    saved = None
    interactive_tty = tty_mode and os.isatty(stdin_fd)
    if interactive_tty:
        _send_size(bundle)  # before attaching: the container starts once we attach
    sock = _connect(bundle, "attach")
    if interactive_tty:
        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)

        def on_winch(_sig: int, _frame: FrameType | None) -> None:
            _send_size(bundle)

        signal.signal(signal.SIGWINCH, on_winch)
    try:
        _pump(sock, stdin_fd if stdin else None, tty_mode)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        sock.close()


def _pump(sock: socket.socket, stdin_fd: int | None, raw: bool) -> None:
    watch: list[int | socket.socket] = [sock] + ([stdin_fd] if stdin_fd is not None else [])
    buffer = b""
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if stdin_fd is not None and stdin_fd in ready:
            data = os.read(stdin_fd, 65536)
            if data:
                sock.sendall(data)
            else:
                watch.remove(stdin_fd)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
        if sock in ready:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return
            if raw:
                os.write(sys.stdout.fileno(), data)
                continue
            buffer += data
            buffer = _demux(buffer)


def _demux(buffer: bytes) -> bytes:
    """Write out every complete stdcopy frame; returns what is left."""
    while len(buffer) >= 8:
        stream, length = struct.unpack(">BxxxL", buffer[:8])
        if len(buffer) < 8 + length:
            break
        target = sys.stdout if stream == 1 else sys.stderr
        os.write(target.fileno(), buffer[8:8 + length])
        buffer = buffer[8 + length:]
    return buffer
