"""Reading a container's json-file log: all of it, the tail, or following it across
rotations while the container runs.

Files are known by inode, never by name: a rotation renames ``container.log`` to
``container.log.1`` (``.1`` to ``.2``, …; the oldest goes) and starts a new
``container.log``, so a name means another file after every rotation.  Every file
is read through a descriptor held from the moment it is found, so a file renamed or
even deleted under the reader is still read to its end.  A follower reads its file
until a newer one exists (the writer closes a file before it rotates it, so it is
complete by then), then goes on with the next newer one, whatever its name is by
then — however many rotations happened in between, as long as those files exist.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dockyard.engine.containers import supervised
from dockyard.errors import ContainerNotFound, InvalidArgument

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService

_File = tuple[int, IO[bytes]]  # (inode, open file)


def read(service: ContainerService, ref: str, *, follow: bool = False, tail: int | None = None,
         since: str | None = None,
         stop: Callable[[], bool] | None = None) -> Iterator[dict[str, str]]:
    """The log's entries; with ``follow``, on until the container stops or ``stop()``
    says the reader has gone (a server's client that hung up: looked at every poll)."""
    record = service.get(ref)
    path = service.log_path(record.id)
    files = _snapshot(path)
    data = b""
    try:
        lines: list[dict[str, str]] = []
        for _inode, handle in files:
            data = handle.read()
            if handle is not files[-1][1]:
                lines += _parse_lines(data)
        # the newest file may end in a line being written: it is finished by following
        complete, _, partial = data.rpartition(b"\n")
        lines += _parse_lines(complete)
    except BaseException:
        _close(files)
        raise
    if since:
        after = since_ns(since)
        lines = [entry for entry in lines if _entry_ns(entry) >= after]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    _close(files[:-1])
    current = files[-1:]
    try:
        yield from lines
        if follow:
            yield from _follow(service, record.id, path, current, partial, stop)
    finally:
        _close(current)


def _follow(service: ContainerService, container_id: str, path: Path, queue: list[_File],
            buffer: bytes, stop: Callable[[], bool] | None = None) -> Iterator[dict[str, str]]:
    """Until the container stops: ``queue`` holds the file being read (first) and the
    newer files found after it, oldest first; each poll finds the files newer than
    the newest held one and reads on through them, in order."""
    while True:
        try:
            record = service.get(container_id)
            running = record.state in ("running", "paused", "restarting") or \
                supervised(record)
        except ContainerNotFound:  # removed (--rm) once it exited: all it wrote is here
            running = False
        _newer_files(path, queue)
        while queue:
            buffer += queue[0][1].read()
            *complete, buffer = buffer.split(b"\n")
            yield from _parse_lines(b"\n".join(complete))
            if len(queue) == 1:
                break
            # a newer file exists: this one was complete before we read it to its end
            queue.pop(0)[1].close()
            buffer = b""  # (nothing: the writer writes whole lines)
        if not running or (stop is not None and stop()):
            return
        time.sleep(0.01)


def _newer_files(path: Path, queue: list[_File]) -> None:
    """Append to ``queue`` the log's files newer than its last one (all of them if that
    one is gone: files go oldest first), or the first file if ``queue`` is empty."""
    found = _snapshot(path)
    inodes = [inode for inode, _ in found]
    if not queue:
        newer = found
    elif queue[-1][0] in inodes:
        newer = found[inodes.index(queue[-1][0]) + 1:]
    else:
        newer = found
    queue += newer
    _close([item for item in found if item not in newer])


def _snapshot(path: Path) -> list[_File]:
    """The log's files, oldest first, each open: a view of one instant, taken again
    if a rotation moved any of them while we looked (every name is looked at twice)."""
    from dockyard.supervise.logfile import log_files

    while True:
        files: list[_File] = []
        seen: dict[str, int] = {}
        for name in log_files(path):
            try:
                handle = open(name, "rb")  # noqa: SIM115 - held by the caller
            except FileNotFoundError:
                continue
            inode = os.fstat(handle.fileno()).st_ino
            files.append((inode, handle))
            seen[name.name] = inode
        again: dict[str, int] = {}
        for name in log_files(path):
            with contextlib.suppress(FileNotFoundError):
                again[name.name] = name.stat().st_ino
        if again == seen:
            return files
        _close(files)


def _close(files: list[_File]) -> None:
    for _inode, handle in files:
        handle.close()


_DURATION = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d(?:T\d\d(?::\d\d(?::\d\d)?)?)?)(?:\.(\d+))?"
                    r"([Zz]|[+-]\d\d:\d\d)?")


def since_ns(value: str, now_ns: int | None = None) -> int:
    """Docker's ``--since`` (the docker CLI's ``GetTimestamp``) in nanoseconds since the
    epoch: a Go duration back from now (``10m``, ``1h30m``: whole seconds), an RFC 3339
    date or time (``2024-05-01``, ``…T10:00``, ``…T10:00:00.5Z``, ``…+02:00``; local
    time without a zone) or a unix timestamp (``1714557600``, ``1714557600.5``)."""
    text = value.strip()
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.removeprefix("+"))
    if body and _DURATION.sub("", body) == "":
        nanos = sum(float(n) * _UNIT_NS[unit] for n, unit in _DURATION.findall(body))
        now = time.time_ns() if now_ns is None else now_ns
        return (now - sign * int(nanos)) // 10**9 * 10**9
    unix = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?", text)
    if unix:
        return int(unix[1]) * 10**9 + int((unix[2] or "").ljust(9, "0"))
    stamp = _STAMP.fullmatch(text)
    if stamp is None:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')
    try:
        moment = datetime.datetime.fromisoformat(stamp[1])
    except ValueError as exc:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}": '
                              f"{exc}") from None
    zone = stamp[3]
    if zone in ("Z", "z"):
        moment = moment.replace(tzinfo=datetime.UTC)
    elif zone:
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = moment.replace(tzinfo=datetime.timezone(offset if zone[0] == "+"
                                                         else -offset))
    return int(moment.timestamp()) * 10**9 + int((stamp[2] or "")[:9].ljust(9, "0"))


def _entry_ns(entry: dict[str, str]) -> int:
    try:
        return since_ns(entry["time"])
    except (InvalidArgument, KeyError):
        return 0


def _parse_lines(data: bytes) -> list[dict[str, str]]:
    """json-file lines; a torn line (a file rotated away under a writer) is skipped."""
    entries = []
    for line in data.split(b"\n"):
        if line.strip():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    return entries
