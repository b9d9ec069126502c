"""Reading a container's json-file log: all of it, the tail, or following it across
rotations while the container runs."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.engine.containers import supervised

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService


def read(service: ContainerService, ref: str, *, follow: bool = False, tail: int | None = None,
     since: str | None = None) -> Iterator[dict[str, str]]:
    record = service.get(ref)
    path = service.log_path(record.id)
    lines = [entry for file in _rotated_files(path) for entry in _entries(file)]
    position, inode = 0, 0
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as current:
        data = current.read()
        position, inode = len(data), os.fstat(current.fileno()).st_ino
        lines += _parse_lines(data)
    if since:
        lines = [entry for entry in lines if entry["time"] >= since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    yield from lines
    if not follow:
        return
    yield from _follow(service, record.id, path, position, inode)


def _follow(service: ContainerService, container_id: str, path: Path, position: int,
        inode: int) -> Iterator[dict[str, str]]:
    """Tail the log; a rotation (new inode) is followed into the new file, after
    reading what the old one still had."""
    buffer = b""
    while True:
        record = service.get(container_id)
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
            current = os.fstat(handle.fileno()).st_ino
            if inode and current != inode:
                buffer += _rest_of_rotated(path, inode, position)
                position = 0
            inode = current
            handle.seek(position)
            chunk = handle.read()
            position += len(chunk)
            buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from _parse_lines(b"\n".join(complete))
        if record.state not in ("running", "paused") and not supervised(record):
            return
        time.sleep(0.01)


def _parse_lines(data: bytes) -> list[dict[str, str]]:
    """json-file lines; a torn line (a rotation raced a reader) is skipped, not fatal."""
    entries = []
    for line in data.split(b"\n"):
        if line.strip():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    return entries


def _rotated_files(path: Path) -> list[Path]:
    from dockyard.supervise.logfile import log_files

    return [p for p in log_files(path) if p != path]


def _entries(path: Path) -> list[dict[str, str]]:
    try:
        return _parse_lines(path.read_bytes())
    except OSError:
        return []


def _rest_of_rotated(path: Path, inode: int, position: int) -> bytes:
    """What the file we were following (now ``container.log.1``) got after ``position``."""
    rotated = path.with_name(path.name + ".1")
    with contextlib.suppress(OSError), open(rotated, "rb") as handle:
        if os.fstat(handle.fileno()).st_ino == inode:
            handle.seek(position)
            return handle.read()
    return b""
