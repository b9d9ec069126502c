"""The build context: a directory (used in place), a tar on stdin (extracted to a
private directory with tarfile's ``data`` filter, so nothing lands outside it), or
nothing (a Dockerfile piped on stdin).  ``.dockerignore`` decides what COPY and ADD
can see; the checksum of what a COPY takes is part of its cache key.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol

from dockyard.build.patterns import IgnoreMatcher, glob_match, has_magic
from dockyard.errors import InvalidArgument, NotFound


class DigestCache(Protocol):
    def digest(self, path: str, stamp: str, compute: Callable[[], str]) -> str: ...


class BuildContext:
    def __init__(self, root: Path, *, owned: bool = False) -> None:
        self.root = root
        self.owned = owned  # a temporary extraction we remove on close
        self.digests: DigestCache | None = None  # remembered file digests, if any
        ignore = root / ".dockerignore"
        self.ignore = IgnoreMatcher.from_text(ignore.read_text() if ignore.is_file() else "")
        self._checksums: dict[str, str] = {}

    def use_ignore_file_of(self, dockerfile: Path) -> None:
        """BuildKit's rule: ``<Dockerfile name>.dockerignore`` beside the Dockerfile, when
        it exists, replaces the context's ``.dockerignore``."""
        specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if specific.is_file():
            self.ignore = IgnoreMatcher.from_text(specific.read_text())
            self._checksums.clear()

    @classmethod
    def from_directory(cls, path: Path) -> BuildContext:
        if not path.is_dir():
            raise NotFound(f"unable to prepare context: path {str(path)!r} not found")
        return cls(path.resolve())

    @classmethod
    def from_tar(cls, stream: IO[bytes], scratch: Path) -> BuildContext:
        import shutil
        import tarfile
        import tempfile

        target = Path(tempfile.mkdtemp(prefix="context-", dir=scratch))
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as archive:
                archive.extractall(target, filter="data")
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise InvalidArgument(f"the build context is not a valid tar archive: {exc}") \
                from exc
        return cls(target, owned=True)

    @classmethod
    def empty(cls, scratch: Path) -> BuildContext:
        import tempfile

        return cls(Path(tempfile.mkdtemp(prefix="context-", dir=scratch)), owned=True)

    def close(self) -> None:
        if self.owned:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)

    def included(self, relative: str) -> bool:
        return relative in ("", ".") or not self.ignore.excluded(relative)

    def host_path(self, relative: str) -> Path:
        """The file behind a context path; symlinks may not lead out of the context."""
        path = Path(os.path.realpath(self.root / relative))
        if path != self.root and self.root not in path.parents:
            raise InvalidArgument(f"forbidden path outside the build context: {relative}")
        return path

    def match(self, source: str) -> list[str]:
        """A COPY source (path or glob, relative to the context) → context paths."""
        cleaned = os.path.normpath("/" + source).lstrip("/")
        if not has_magic(cleaned):
            if cleaned and (not os.path.lexists(self.root / cleaned) or
                            not self.included(cleaned)):
                return []
            return [cleaned]
        hits = [relative for relative in self.walk("") if glob_match(cleaned, relative)]
        return sorted(hits)

    def walk(self, relative: str) -> Iterator[str]:
        """Every included path below ``relative`` (not itself), parents first."""
        base = self.root / relative if relative else self.root
        for directory, dirs, files in os.walk(base):
            rel_dir = os.path.relpath(directory, self.root)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            kept = []
            for name in sorted(dirs):
                path = prefix + name
                if self.included(path):
                    yield path
                    kept.append(name)
                elif self.ignore.may_reinclude_under(path):
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(files):
                if self.included(prefix + name):
                    yield prefix + name

    def checksum(self, relative: str) -> str:
        """Content hash of a context path and, for a directory, everything included
        below it: names, modes, link targets and file contents (not times)."""
        if relative in self._checksums:
            return self._checksums[relative]
        digest = hashlib.sha256()
        for path in [relative, *self.walk(relative)] if relative else ["", *self.walk("")]:
            full = self.root / path if path else self.root
            info = os.lstat(full)
            digest.update(f"{path}\0{stat.S_IMODE(info.st_mode):o}\0{stat.S_IFMT(info.st_mode)}"
                          .encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(full).encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(self._file_digest(full, info).encode())
            digest.update(b"\0")
        value = digest.hexdigest()
        self._checksums[relative] = value
        return value


    def _file_digest(self, path: Path, info: os.stat_result) -> str:
        if self.digests is None or self.owned:  # a temporary extraction: nothing to reuse
            return _file_digest(path)
        stamp = (f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:"
                 f"{info.st_ctime_ns}")
        return self.digests.digest(str(path), stamp, lambda: _file_digest(path))


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def clean_path(path: str) -> str:
    """A context path as written (``./a/../b``, ``/b``) → its normal form (``b``)."""
    return posixpath.normpath("/" + path).lstrip("/")
