"""Group ownership of a volume's tree, as the kubelet gives a pod's ``fsGroup`` to
its volumes (``SetVolumeOwnership``): every entry group-owned by the gid and
group-readable and -writable (read-only volumes: readable), directories also
searchable and setgid, so what is made in them later belongs to the group too.
Symlinks are left alone.

The tree may be a container's making: the walk is ``fs.tree``'s (one descriptor per
level, never following a symlink), each entry is opened ``O_PATH|O_NOFOLLOW``
relative to its directory and changed through that descriptor's
``/proc/self/fd`` link, so an entry swapped for a symlink meanwhile is never
followed out of the tree.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dockyard.fs.inroot import proc_path
from dockyard.fs.tree import walk

RW = 0o660
RO = 0o440
EXEC = 0o110
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def needs_change(root: Path, gid: int, *, readonly: bool = False) -> bool:
    """``fsGroupChangePolicy: OnRootMismatch``: the tree is changed only when its top
    is not a setgid directory of the group with the group's permissions (the
    kubelet's test)."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return False
    wanted = (RO if readonly else RW) | EXEC
    return (info.st_gid != gid or not stat.S_ISDIR(info.st_mode)
            or stat.S_IMODE(info.st_mode) & wanted != wanted
            or not info.st_mode & stat.S_ISGID)


def give_group(root: Path, gid: int, *, readonly: bool = False) -> int:
    """Every entry of the tree at ``root`` to group ``gid``; how many were changed."""
    top = os.open(root, _PATH | os.O_DIRECTORY)
    changed = 0
    try:
        changed += _own(top, gid, readonly)
        for entry in walk(top):
            if stat.S_ISLNK(entry.stat.st_mode):
                continue
            try:
                fd = os.open(entry.name, _PATH, dir_fd=entry.dir_fd)
            except FileNotFoundError:  # gone meanwhile
                continue
            try:
                changed += _own(fd, gid, readonly)
            finally:
                os.close(fd)
    finally:
        os.close(top)
    return changed


def _own(fd: int, gid: int, readonly: bool) -> int:
    info = os.fstat(fd)
    if stat.S_ISLNK(info.st_mode):  # swapped for a symlink since the walk saw it
        return 0
    mask = RO if readonly else RW
    if stat.S_ISDIR(info.st_mode):
        mask |= EXEC | stat.S_ISGID
    path = proc_path(fd)
    os.chown(path, -1, gid)  # (clears set-id bits: the mode below puts them back)
    os.chmod(path, stat.S_IMODE(info.st_mode) | mask)
    return 1
