"""Docker's init layer, as ``export`` shows it: what dockerd puts between an image and
a container's own changes (moby's ``daemon/initlayer``), so ``docker export`` of any
container lists ``/.dockerenv``, ``/dev/console``, ``/dev/pts``, ``/dev/shm``,
``/etc/mtab`` → ``/proc/mounts`` and empty ``/etc/hostname``, ``/etc/hosts`` and
``/etc/resolv.conf``, files of mode 0755 and owner root.

dockyard makes no such layer (its runtime mounts what it needs), so ``export`` merges
these entries into the tar of the container's files: pure planning here, the
archive written by descriptor in ``ContainerOps.export``.  As moby's ``Setup`` does,
an entry replaces whatever the image has at its path (it unlinks it), except a
directory, which stays (unlink cannot remove it); a missing parent directory is
made with mode 0755.
"""

from __future__ import annotations

import tarfile
from typing import NamedTuple

# moby's daemon/initlayer/setup_unix.go: path → "dir", "file" or a symlink's target
INIT_ENTRIES: dict[str, str] = {
    "dev/pts": "dir",
    "dev/shm": "dir",
    "proc": "dir",
    "sys": "dir",
    ".dockerenv": "file",
    "etc/resolv.conf": "file",
    "etc/hosts": "file",
    "etc/hostname": "file",
    "dev/console": "file",
    "etc/mtab": "/proc/mounts",
}


class InitEntry(NamedTuple):
    key: tuple[str, ...]  # the path's components: the order of a sorted depth-first walk
    info: tarfile.TarInfo


def entries(mtime: int) -> list[InitEntry]:
    """The init layer's entries (parents included), in the order a sorted depth-first
    walk meets them."""
    kinds: dict[str, str] = {}
    for path, kind in INIT_ENTRIES.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            kinds.setdefault("/".join(parts[:depth]), "dir")
        kinds[path] = kind
    made = []
    for path, kind in kinds.items():
        info = tarfile.TarInfo(path)
        info.mode, info.mtime, info.uid, info.gid = 0o755, mtime, 0, 0
        info.uname = info.gname = ""
        if kind == "dir":
            info.type = tarfile.DIRTYPE
        elif kind != "file":
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, kind, 0o777
        made.append(InitEntry(tuple(path.split("/")), info))
    return sorted(made, key=lambda entry: entry.key)


def key_of(relative: str) -> tuple[str, ...]:
    return tuple(relative.split("/"))
