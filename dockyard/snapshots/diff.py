"""The reverse of unpacking: an overlay upper directory written as an OCI layer tar.

overlayfs records a deletion as a 0/0 character device and a replaced directory
as the ``trusted.overlay.opaque`` xattr; a layer says the same with ``.wh.NAME``
and ``.wh..wh..opq`` entries.  Entries are sorted and, with ``SOURCE_DATE_EPOCH``
set, their times clamped, so the same changes always give the same layer digest
(builds and commits are reproducible).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from typing import IO, TYPE_CHECKING

from dockyard.fs.inroot import Root, proc_path
from dockyard.fs.tartree import TarWriter
from dockyard.fs.tree import Entry, walk
from dockyard.snapshots.unpack import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX

if TYPE_CHECKING:
    from dockyard.store.idmap import IdMap


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(proc_path(dir_fd), OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def write_diff(upper: str, out: IO[bytes], idmap: IdMap | None = None) -> str:
    """Write the changes in ``upper`` as an uncompressed layer tar; returns its diff_id.
    A remapped root's host ids go back to the container's (``idmap``).

    The walk is :func:`dockyard.fs.tree.walk` (a descriptor per level, no recursion,
    no symlink followed): the upper directory is what a container wrote.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    clamp = int(epoch) if epoch else None
    sink = _HashingWriter(out)
    stream: IO[bytes] = sink  # type: ignore[assignment]  # a write-only file is all tar needs
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive, \
            Root(upper, what="upper directory") as root:
        writer = TarWriter(archive, lambda info: _normalise(info, clamp, idmap))
        for entry in walk(root.fd):
            if _is_whiteout(entry.stat):
                parent, _, base = entry.relative.rpartition("/")
                marker = f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
                archive.addfile(_marker(marker, clamp))
                continue
            writer.add(entry.dir_fd, entry.name, entry.relative, entry.stat)
            if entry.is_dir:
                _add_opaque_marker(archive, entry, clamp)
    return f"sha256:{sink.hash.hexdigest()}"


def opaque_at(dir_fd: int, name: str) -> bool:
    """Whether the directory ``name`` below ``dir_fd`` is opaque (overlayfs's xattr),
    looked at through a descriptor of it, never a path."""
    try:
        fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return _is_opaque(fd)
    finally:
        os.close(fd)


def _add_opaque_marker(archive: tarfile.TarFile, entry: Entry, clamp: int | None) -> None:
    if opaque_at(entry.dir_fd, entry.name):
        archive.addfile(_marker(f"{entry.relative}/{OPAQUE_MARKER}", clamp))


def _marker(name: str, clamp: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = clamp or 0
    return info


def _normalise(info: tarfile.TarInfo, clamp: int | None, idmap: IdMap | None) -> None:
    info.uname = info.gname = ""
    if idmap is not None:
        idmap.header_to_container(info)
    if clamp is not None and info.mtime > clamp:
        info.mtime = clamp
