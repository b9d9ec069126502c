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
from typing import IO

from dockyard.snapshots.unpack import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX


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


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_diff(upper: str, out: IO[bytes]) -> str:
    """Write the changes in ``upper`` as an uncompressed layer tar; returns its diff_id."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    clamp = int(epoch) if epoch else None
    sink = _HashingWriter(out)
    stream: IO[bytes] = sink  # type: ignore[assignment]  # a write-only file is all tar needs
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for directory, dirs, files in os.walk(upper):
            dirs.sort()
            relative_dir = os.path.relpath(directory, upper)
            prefix = "" if relative_dir == "." else relative_dir + "/"
            if prefix and _is_opaque(directory):
                archive.addfile(_marker(prefix + OPAQUE_MARKER, clamp))
            for name in sorted(files + [d for d in dirs if os.path.islink(
                    os.path.join(directory, d))]):
                _add(archive, os.path.join(directory, name), prefix + name, clamp)
            for name in list(dirs):
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    dirs.remove(name)
                    continue
                info = archive.gettarinfo(path, prefix + name)
                _normalise(info, clamp)
                archive.addfile(info)
    return f"sha256:{sink.hash.hexdigest()}"


def _marker(name: str, clamp: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = clamp or 0
    return info


def _normalise(info: tarfile.TarInfo, clamp: int | None) -> None:
    info.uname = info.gname = ""
    if clamp is not None and info.mtime > clamp:
        info.mtime = clamp


def _add(archive: tarfile.TarFile, path: str, name: str, clamp: int | None) -> None:
    st = os.lstat(path)
    if _is_whiteout(st):
        parent, base = os.path.split(name)
        archive.addfile(_marker(os.path.join(parent, WHITEOUT_PREFIX + base), clamp))
        return
    info = archive.gettarinfo(path, name)
    _normalise(info, clamp)
    if info.isreg():
        with open(path, "rb") as handle:
            archive.addfile(info, handle)
    else:
        archive.addfile(info)
