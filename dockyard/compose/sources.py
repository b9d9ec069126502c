"""What loading a project read: every file (its content's digest, or that it was not
there) and every environment variable (its value, or that it was unset).

The loader and lowering read files and the environment only through this module, so
that while a ``Recorder`` is active (``recording``) each read is noted.  The project
cache (``compose.cache``) keeps the notes beside the project and uses it again only
while every note still holds: a file edited, created or removed, or a variable set
or changed, since then makes the project load afresh.  With no recorder active the
functions are the plain reads.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any


def _sha256() -> Callable[[bytes], Any]:
    """SHA-256 from the builtin module where there is one: hashlib's import starts
    OpenSSL (~2-3 ms of every command)."""
    try:
        found: Callable[[bytes], Any] = importlib.import_module("_sha256").sha256
    except ImportError:  # a Python built without it
        import hashlib

        return hashlib.sha256
    return found


# loaded with this module (a warm worker's zygote preloads it): ~0.5 ms of a command
_SHA256 = _sha256()


def digest(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    return str(_SHA256(data).hexdigest())


MISSING = "-"  # a path that was not there
DIRECTORY = "dir"  # a directory (its contents do not matter to the project)
OTHER = "other"  # neither a file nor a directory
WHOLE = 4 << 20  # a file up to this size is known by its content


class Recorder:
    """The notes of one load: path → what was there; variable → its value (None:
    unset)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.variables: dict[str, str | None] = {}


_active: ContextVar[Recorder | None] = ContextVar("compose_sources", default=None)


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    recorder = Recorder()
    token = _active.set(recorder)
    try:
        yield recorder
    finally:
        _active.reset(token)


def fingerprint(path: str | Path) -> str:
    """What is at ``path`` now, as the notes say it: the content's digest (a file over
    ``WHOLE`` bytes: its identity, size, mtime and ctime — any write changes the
    ctime), ``dir``, ``other`` (a FIFO, a device: never opened for reading), or
    ``-`` when nothing (or nothing readable) is there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except IsADirectoryError:
        return DIRECTORY
    except OSError:
        return MISSING
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return DIRECTORY
        if not stat.S_ISREG(info.st_mode):
            return OTHER
        if info.st_size > WHOLE:
            return (f"stat:{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:"
                    f"{info.st_ctime_ns}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return digest(handle.read())
    except OSError:
        return MISSING
    finally:
        os.close(fd)


def _note(path: str | Path, seen: str | None = None) -> str:
    recorder = _active.get()
    if recorder is None and seen is None:
        return fingerprint(path)
    found = fingerprint(path) if seen is None else seen
    if recorder is not None:
        recorder.files[os.path.abspath(path)] = found
    return found


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text (``OSError`` and ``UnicodeDecodeError`` as ``Path.read_text``)."""
    data = path.read_bytes()
    if _active.get() is not None:
        _note(path, digest(data) if len(data) <= WHOLE else None)
    return data.decode(encoding)


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if _active.get() is not None:
        _note(path, digest(data) if len(data) <= WHOLE else None)
    return data


def is_file(path: str | Path) -> bool:
    if _active.get() is None:
        return os.path.isfile(path)
    return _note(path) not in (MISSING, DIRECTORY, OTHER) and os.path.isfile(path)


def is_dir(path: str | Path) -> bool:
    if _active.get() is None:
        return os.path.isdir(path)
    return _note(path) == DIRECTORY


def expanduser(path: str) -> str:
    """``os.path.expanduser``, noting ``HOME`` when it is used."""
    if path.startswith("~"):
        recorder = _active.get()
        if recorder is not None:
            recorder.variables["HOME"] = os.environ.get("HOME")
    return os.path.expanduser(path)


class Environment(Mapping[str, str]):
    """What interpolation sees: the process environment over ``files`` (the ``.env``
    values, already noted as files).  Every lookup notes the variable's value in
    the process environment."""

    def __init__(self, files: Mapping[str, str], process: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.process = process

    def process_value(self, key: str) -> str | None:
        """The variable in the process environment alone (None: unset), noted."""
        value = self.process.get(key)
        recorder = _active.get()
        if recorder is not None:
            recorder.variables[key] = value
        return value

    def __getitem__(self, key: str) -> str:
        value = self.process_value(key)
        if value is not None:
            return value
        return self.files[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self.process_value(key) is not None or
                                         key in self.files)

    def __iter__(self) -> Iterator[str]:
        # the whole environment: a project that lists it depends on all of it
        raise TypeError("a compose environment is looked up by name, not listed")

    def __len__(self) -> int:
        raise TypeError("a compose environment is looked up by name, not listed")

    def under(self, files: Mapping[str, str]) -> Environment:
        """An included project's: its own ``.env`` values under these."""
        return Environment({**files, **self.files}, self.process)


def still_holds(files: Mapping[str, str], variables: Mapping[str, str | None],
                environ: Mapping[str, str]) -> bool:
    """Whether every note is still true (the variables against ``environ``)."""
    for key, value in variables.items():
        if environ.get(key) != value:
            return False
    return all(fingerprint(path) == seen for path, seen in files.items())
