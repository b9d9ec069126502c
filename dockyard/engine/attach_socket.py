"""A client's end of a container's attach socket (the supervisor's ``attach.sock``,
see ``supervise.iohub``), for the CLI's ``attach``/foreground ``run`` and the API's
hijacked attach alike."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dockyard.stdcopy import split_frame


def connect(bundle: Path, first_line: str) -> socket.socket:
    """Connected (through /proc/self/fd: a bundle's path may be longer than a socket
    path can be) and introduced by ``first_line``."""
    fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{fd}/attach.sock")
        except OSError:
            sock.close()
            raise
    finally:
        os.close(fd)
    sock.sendall(first_line.encode() + b"\n")
    return sock


class Frames:
    """A connection's stdcopy frames (``supervise.iohub``), read one at a time;
    ``buffered``: bytes read off it already."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buffer = buffered

    def next(self) -> tuple[int, bytes] | None:
        """The next frame's stream and payload; None once the connection ends (or
        fails, or its timeout passes)."""
        while True:
            split = split_frame(self.buffer)
            if split is not None:
                stream, payload, self.buffer = split
                return stream, payload
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                return None
            self.buffer += data

    def until(self, stream: int) -> bytes | None:
        """The payload of the next frame of ``stream`` (others skipped); None if the
        connection ends first."""
        while (got := self.next()) is not None:
            if got[0] == stream:
                return got[1]
        return None
