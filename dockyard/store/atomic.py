"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync dir.

Whatever instant the process dies at, a reader sees either the old content or the
new, never a torn file.  A write that fails (a full disk) removes its temp file and
raises an ``OSError`` naming the target (``os.write`` on a descriptor names none),
so ``store.oserror`` can say which path could not be written.

Paths are ``str`` or ``Path``, handled with ``os.path``: the runtime writes its state
through here on every command, and does not import ``pathlib`` (~3 ms with the ``re``
it brings).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from dockyard.typelite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import IO

    from _typeshed import StrPath


@contextlib.contextmanager
def _naming(path: StrPath) -> Iterator[None]:
    """Give an ``OSError`` that names no file the target's name (same class, errno)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc


def _beside(path: StrPath, kind: str) -> str:
    """The temporary name of ``path``'s next content: hidden, in the same directory
    (a rename is atomic only within one file system), unique to this process."""
    head, name = os.path.split(os.fspath(path))
    return os.path.join(head, f".{name}.{kind}{os.getpid()}")


def _directory_of(path: StrPath) -> str:
    return os.path.dirname(os.path.abspath(path))


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_dir(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: StrPath, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``durable=False`` skips the fsyncs: used for state under /run (tmpfs), where a
    crash loses the file anyway and the rename alone keeps readers consistent.
    """
    tmp = _beside(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with _naming(path):
            view = memoryview(data)
            while view:  # a short write (a nearly full disk) writes the rest or fails
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        _remove(tmp)
        raise
    if durable:
        fsync_dir(_directory_of(path))


@contextlib.contextmanager
def atomic_writer(path: StrPath, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A file streamed into place: written beside ``path``, fsynced and renamed only
    when the block finishes without an error (otherwise removed)."""
    tmp = _beside(path, "partial")
    try:
        with open(tmp, "wb") as out:
            os.chmod(tmp, mode)
            yield out
            with _naming(path):
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
        fsync_dir(_directory_of(path))
    finally:
        _remove(tmp)
