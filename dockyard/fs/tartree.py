"""Tar streams of trees read by descriptor (``cp`` out, ``export``, diffs, build
contexts): the archiving half of ``fs.tree``, apart so that ``tarfile`` is imported
only by the commands that write archives (it costs ~1 ms of every start otherwise).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable
from typing import IO

from dockyard.errors import InvalidArgument
from dockyard.fs.tree import open_dir, walk


def tar_info(name: str, st: os.stat_result, linkname: str = "") -> tarfile.TarInfo:
    """A tar header for an entry from its lstat (no owner names: ids only, since a
    host's names mean nothing for a container's files)."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, linkname
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        raise InvalidArgument(f"{name}: sockets cannot be archived")
    return info


class _Exactly:
    """Reads a file as ``size`` bytes even if a running container truncates or
    extends it meanwhile (zeros pad a shrunk file), so the archive stays valid."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle = handle
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.handle.read(n)
        data += bytes(n - len(data))
        self.left -= n
        return data


class TarWriter:
    """Adds entries read by descriptor to a tar stream, hard links recorded once."""

    def __init__(self, archive: tarfile.TarFile,
                 normalise: Callable[[tarfile.TarInfo], None] | None = None) -> None:
        self.archive = archive
        self.normalise = normalise
        self.links: dict[tuple[int, int], str] = {}

    def add(self, dir_fd: int, name: str, arcname: str, st: os.stat_result) -> None:
        """One entry (not its contents, for a directory); sockets are skipped."""
        if stat.S_ISSOCK(st.st_mode):
            return
        linkname = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else ""
        info = tar_info(arcname, st, linkname)
        if self.normalise is not None:
            self.normalise(info)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), arcname)
            if first != arcname:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                self.archive.addfile(info)
                return
        if not stat.S_ISREG(st.st_mode):
            self.archive.addfile(info)
            return
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            return  # swapped for a symlink after it was listed: not followed
        with os.fdopen(fd, "rb") as handle:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode):
                return
            info.size = now.st_size
            self.archive.addfile(info, _Exactly(handle, info.size))

    def add_tree(self, top_fd: int, prefix: str) -> None:
        """Everything below ``top_fd``, named ``prefix/…``."""
        for entry in walk(top_fd):
            self.add(entry.dir_fd, entry.name, f"{prefix}/{entry.relative}".lstrip("/"),
                     entry.stat)


def write_entry_tar(parent_fd: int, name: str, out: IO[bytes], *, arcname: str,
                    normalise: Callable[[tarfile.TarInfo], None] | None = None) -> None:
    """One entry below ``parent_fd`` as a tar stream named ``arcname`` — and everything
    below it when it is a directory (``cp``); a final symlink is archived as one.
    ``normalise`` edits each header (a remapped root gives container ids)."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        writer = TarWriter(archive, normalise)
        writer.add(parent_fd, name, arcname, st)
        if stat.S_ISDIR(st.st_mode):
            top = open_dir(parent_fd, name)
            try:
                writer.add_tree(top, arcname)
            finally:
                os.close(top)


def write_tree_tar(top_fd: int, out: IO[bytes], *, arcname: str,
                   normalise: Callable[[tarfile.TarInfo], None] | None = None) -> None:
    """The directory ``top_fd`` as a tar stream with its entries under ``arcname``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        writer = TarWriter(archive, normalise)
        st = os.stat(top_fd)
        if arcname not in ("", "."):
            writer.archive.addfile(tar_info(arcname, st))
        writer.add_tree(top_fd, "" if arcname == "." else arcname)
