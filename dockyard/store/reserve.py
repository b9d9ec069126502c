"""Room to free room: a file of :data:`SIZE` bytes under the root, given up when the
disk is full so that the commands that free space can still work.

Removing a container or an image deletes rows, and SQLite in WAL mode needs disk
space to delete (its ``-shm`` index, the ``-wal`` frames): on a full disk even
``rm -f`` would fail.  So the root keeps ``reserve``, allocated (not sparse) when
the root is set up; when the metadata database cannot open or commit for lack of
space, :func:`release` deletes it and the operation is retried.  :func:`ensure`
makes it again once the filesystem has room to spare (:data:`REFILL_FREE`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NAME = "reserve"
SIZE = 2 << 20
REFILL_FREE = 4 * SIZE  # remade only when this much is free: never fills a disk itself


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def low_on_space(path: Path) -> bool:
    """Whether ``path``'s filesystem has less free than the reserve holds."""
    try:
        return free_bytes(path) < SIZE
    except OSError:
        return False


def ensure(root: Path) -> None:
    """Make ``root/reserve`` if it is missing and the filesystem has room to spare.

    Best effort: a read-only or full root simply has no reserve for now."""
    target = root / NAME
    if target.exists():
        return
    try:
        if free_bytes(root) < REFILL_FREE:
            return
        tmp = root / f".{NAME}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, SIZE)  # blocks allocated now: a sparse file frees nothing
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    except OSError:
        pass
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()


def release(root: Path) -> bool:
    """Delete the reserve; whether there was one to give up."""
    try:
        (root / NAME).unlink()
    except OSError:
        return False
    return True
