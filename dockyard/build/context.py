"""The build context: a directory (used in place), a tar on stdin (extracted to a
private directory by dockyard's one tar reader, so nothing lands outside it), or
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
from dockyard.fs.tree import Entry


class DigestCache(Protocol):
    def digest(self, path: str, stamp: str, compute: Callable[[], str]) -> str: ...


class BuildContext:
    def __init__(self, root: Path, *, owned: bool = False) -> None:
        self.root = root
        self.owned = owned  # a temporary extraction we remove on close
        self.digests: DigestCache | None = None  # remembered file digests, if any
        self.ignore = IgnoreMatcher.from_text(self._ignore_text(root / ".dockerignore") or "")
        self._checksums: dict[str, str] = {}

    def _ignore_text(self, path: Path) -> str | None:
        if not self.owned:  # the user's own directory, as Docker's CLI reads it
            return path.read_text() if path.is_file() else None
        try:  # a context someone sent: its links resolve inside it
            return self.read_file(str(path.relative_to(self.root)), what="ignore file")
        except (NotFound, ValueError):
            return None

    def read_file(self, relative: str, *, what: str, limit: int = 16 << 20) -> str:
        """A regular file of the context, resolved inside it (a link cannot lead out,
        a FIFO or device is not read)."""
        from dockyard.fs.inroot import Root, read_regular_file

        with Root(self.root, what="build context") as root:
            data = read_regular_file(root, relative, limit)
        if data is None:
            raise NotFound(f"failed to read {what}: open {relative}: no such file or "
                           "directory in the build context")
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"{what} {relative}: not UTF-8 text: {exc}") from None

    def use_ignore_file_of(self, dockerfile: Path) -> None:
        """BuildKit's rule: ``<Dockerfile name>.dockerignore`` beside the Dockerfile, when
        it exists, replaces the context's ``.dockerignore``."""
        text = self._ignore_text(dockerfile.with_name(dockerfile.name + ".dockerignore"))
        if text is not None:
            self.ignore = IgnoreMatcher.from_text(text)
            self._checksums.clear()

    @classmethod
    def from_directory(cls, path: Path) -> BuildContext:
        if not path.is_dir():
            raise NotFound(f"unable to prepare context: path {str(path)!r} not found")
        return cls(path.resolve())

    @classmethod
    def from_tar(cls, stream: IO[bytes], scratch: Path) -> BuildContext:
        """A context sent as a tar: every member placed by descriptor inside a private
        directory (``..`` refused, links resolved inside it), owned by root, no set-id
        bits, nothing of a refused archive left behind."""
        import tempfile

        from dockyard.fs.inroot import Root
        from dockyard.fs.tree import remove_tree
        from dockyard.snapshots.unpack import TarRules, extract_tar

        target = Path(tempfile.mkdtemp(prefix="context-", dir=scratch))
        try:
            with Root(target, what="build context") as root:
                extract_tar(stream, root, "/", TarRules(
                    whiteouts=False, follow=True, overwrite=True, owner=(0, 0),
                    mode_mask=0o1777, what="build context"))
        except (InvalidArgument, OSError) as exc:
            remove_tree(target, ignore_errors=True)
            raise InvalidArgument(f"the build context is not a valid tar archive: {exc}") \
                from exc
        return cls(target, owned=True)

    @classmethod
    def empty(cls, scratch: Path) -> BuildContext:
        import tempfile

        return cls(Path(tempfile.mkdtemp(prefix="context-", dir=scratch)), owned=True)

    def close(self) -> None:
        if self.owned:
            from dockyard.fs.tree import remove_tree

            remove_tree(self.root, ignore_errors=True)

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
        """Every included path below ``relative`` (not itself), parents first; by
        descriptor and without recursion (a context can be any depth)."""
        from dockyard.fs.inroot import Root
        from dockyard.fs.tree import walk

        prefix = f"{relative}/" if relative else ""

        def descend(entry: Entry) -> bool:
            path = prefix + entry.relative
            return self.included(path) or self.ignore.may_reinclude_under(path)

        try:
            with Root(self.root, what="build context") as root:  # followed inside it
                top = root.open(relative, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            for entry in walk(top, descend=descend):
                if self.included(prefix + entry.relative):
                    yield prefix + entry.relative
        finally:
            os.close(top)

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
