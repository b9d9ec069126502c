"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync dir.

Whatever instant the process dies at, a reader sees either the old content or the
new, never a torn file.  A write that fails (a full disk) removes its temp file and
raises an ``OSError`` naming the target (``os.write`` on a descriptor names none),
so ``store.oserror`` can say which path could not be written.

Paths are ``str`` or ``Path``, handled with ``os.path``, and the context managers are
classes: the runtime writes its state through here on every command, and imports
neither ``pathlib`` (~3 ms with the ``re`` it brings) nor ``contextlib`` (~2.4 ms).
"""

from __future__ import annotations

import os

from dockyard.stdlite import TYPE_CHECKING, suppress

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import IO

    from _typeshed import StrPath


class _naming:  # noqa: N801 - used as a function: ``with _naming(path):``
    """Give an ``OSError`` that names no file the target's name (same class, errno)."""

    def __init__(self, path: StrPath) -> None:
        self._path = path

    def __enter__(self) -> None:
        pass

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, os.fspath(self._path)) from exc


def _beside(path: StrPath, kind: str) -> str:
    """The temporary name of ``path``'s next content: hidden, in the same directory
    (a rename is atomic only within one file system), unique to this process."""
    head, name = os.path.split(os.fspath(path))
    return os.path.join(head, f".{name}.{kind}{os.getpid()}")


def _directory_of(path: StrPath) -> str:
    return os.path.dirname(os.path.abspath(path))


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


# sync_file_range(2)'s SYNC_FILE_RANGE_WRITE: start writing the range's dirty pages
_SYNC_FILE_RANGE_WRITE = 2
_writeback: list[Callable[[int, int, int, int], int] | None] = []


def start_writeback(fd: int) -> None:
    """Start writing ``fd``'s dirty pages to disk now, without waiting for the writes
    (only, as the man page says, for room in a full device queue) and without dropping
    them from the page cache (``sync_file_range`` with ``SYNC_FILE_RANGE_WRITE``; best
    effort: nothing where it is missing, and its failure is left to the fsync).

    For a large file written in pieces and fsynced at its end (a pulled layer): the
    fsync then finds most pages written already, where it wrote them all at once, after
    the last byte, while nothing else went on (the layers of a pull all end together).
    It changes no guarantee: durability is still the fsync's."""
    if not _writeback:
        try:
            import ctypes  # (~1 ms, on the first large write only: not the runtime's path)

            found = ctypes.CDLL(None, use_errno=True).sync_file_range
            found.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            _writeback.append(found)
        except (ImportError, OSError, AttributeError):  # (no ctypes, libc, or function)
            _writeback.append(None)
    call = _writeback[0]
    if call is not None:
        call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # (a failure leaves it all to the fsync)


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


class atomic_writer:  # noqa: N801 - used as a function: ``with atomic_writer(p) as out:``
    """A file streamed into place: written beside ``path``, fsynced and renamed only
    when the block finishes without an error (otherwise removed)."""

    def __init__(self, path: StrPath, mode: int = 0o644) -> None:
        self._path, self._mode = path, mode
        self._tmp = _beside(path, "partial")

    def __enter__(self) -> IO[bytes]:
        self._out = open(self._tmp, "wb")  # noqa: SIM115 - closed by __exit__
        try:
            os.chmod(self._tmp, self._mode)
        except BaseException:
            self._out.close()
            _remove(self._tmp)
            raise
        return self._out

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if typ is None:
                with _naming(self._path):
                    self._out.flush()
                    os.fsync(self._out.fileno())
                self._out.close()
                os.replace(self._tmp, self._path)
                fsync_dir(_directory_of(self._path))
        finally:
            self._out.close()
            _remove(self._tmp)
