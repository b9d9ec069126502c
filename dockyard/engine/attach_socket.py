"""A client's end of a container's attach socket (the supervisor's ``attach.sock``,
see ``supervise.iohub``), for the CLI's ``attach``/foreground ``run`` and the API's
hijacked attach alike."""

from __future__ import annotations

import os
import socket
from pathlib import Path


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
