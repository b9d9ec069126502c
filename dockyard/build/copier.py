"""COPY and ADD into a mounted step rootfs.

Every path written is resolved inside the rootfs first (``resolve_in_root``), so a
symlink in the image — ``/app -> /`` or ``lib -> /usr/lib`` — is followed the way
it would be inside the container, never out to the host.  Docker's rules: a
directory source copies its contents; several sources (or a glob) need a
destination ending in ``/``; an existing directory destination receives the
file; files are root-owned unless ``--chown``; ``--chmod`` sets every mode; ADD
unpacks local tar archives (gzip, bzip2, xz) into the destination.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux.paths import resolve_in_root


class Source(NamedTuple):
    """One matched source: ``root`` is the context directory or another rootfs."""

    root: str
    relative: str  # slash-separated, below root ("" for the root itself)
    path: str  # the source itself, symlinks resolved inside its root
    include: Callable[[str], bool]
    # whether to look below an excluded directory (a .dockerignore "!" may bring back
    # something under it); None: never
    descend: Callable[[str], bool] | None = None


class Ownership(NamedTuple):
    uid: int = 0
    gid: int = 0
    mode: int | None = None  # --chmod


def _host(rootfs: str, inner: str) -> str:
    return resolve_in_root(rootfs, inner, what="COPY destination")


def make_dirs(rootfs: str, inner: str, owner: Ownership, *, chown_new: bool) -> str:
    """``mkdir -p`` inside the rootfs; new directories 0755 (owned per --chown)."""
    current = "/"
    for part in [p for p in inner.split("/") if p]:
        current = posixpath.join(current, part)
        host = _host(rootfs, current)
        if not os.path.lexists(host):
            os.mkdir(host, 0o755)
            os.chmod(host, 0o755)
            if chown_new:
                os.lchown(host, owner.uid, owner.gid)
        elif not os.path.isdir(host):
            raise InvalidArgument(f"cannot copy to {inner}: {current} is not a directory")
    return _host(rootfs, inner)


def _apply(path: str, info: os.stat_result, owner: Ownership) -> None:
    os.lchown(path, owner.uid, owner.gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(path, owner.mode if owner.mode is not None else stat.S_IMODE(info.st_mode))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_entry(src: str, rootfs: str, inner: str, owner: Ownership) -> None:
    info = os.lstat(src)
    parent = posixpath.dirname(inner) or "/"
    target = _host(rootfs, parent)
    if not os.path.isdir(target):  # under a directory .dockerignore left out
        target = make_dirs(rootfs, parent, owner, chown_new=True)
    host = os.path.join(target, posixpath.basename(inner))
    if stat.S_ISDIR(info.st_mode):
        if os.path.islink(host):  # followed inside the rootfs, as in the container
            host = _host(rootfs, inner)
        if os.path.lexists(host) and not os.path.isdir(host):
            os.unlink(host)
        if not os.path.lexists(host):
            os.mkdir(host, 0o700)
        _apply(host, info, owner)
        return
    if os.path.isdir(host) and not os.path.islink(host):
        raise InvalidArgument(f"cannot replace directory {inner} with a file")
    if os.path.lexists(host):
        os.unlink(host)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(src), host)
    elif stat.S_ISREG(info.st_mode):
        shutil.copyfile(src, host, follow_symlinks=False)
    else:
        return  # sockets, fifos and devices are not copied (as BuildKit)
    _apply(host, info, owner)


def copy_source(source: Source, rootfs: str, dest_inner: str, owner: Ownership, *,
                into_directory: bool, parents: bool) -> None:
    """Copy one matched source to ``dest_inner`` (absolute in the container)."""
    top = source.path  # the source itself is followed when it is a symlink
    info = os.stat(top)
    if parents and source.relative:
        dest_inner = posixpath.join(dest_inner, posixpath.dirname(source.relative)) \
            if not stat.S_ISDIR(info.st_mode) else posixpath.join(dest_inner, source.relative)
    if stat.S_ISDIR(info.st_mode):
        make_dirs(rootfs, dest_inner, owner, chown_new=True)
        dir_times: list[tuple[str, os.stat_result]] = []
        for directory, dirs, files in os.walk(top):
            rel_dir = os.path.relpath(directory, top)
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                src = os.path.join(directory, name)
                rel_in_root = os.path.relpath(src, source.root)
                if not source.include(rel_in_root):
                    if name in dirs and not (source.descend and source.descend(rel_in_root)):
                        dirs.remove(name)  # dockerignore: nothing below it either
                    continue
                inner = posixpath.normpath(posixpath.join(dest_inner, rel_dir, name))
                _copy_entry(src, rootfs, inner, owner)
                if name in dirs and not os.path.islink(src):
                    dir_times.append((inner, os.lstat(src)))
        for inner, dir_info in reversed(dir_times):  # after their contents were written
            os.utime(_host(rootfs, inner), ns=(dir_info.st_atime_ns, dir_info.st_mtime_ns))
        return
    name = posixpath.basename(source.relative) or "file"
    if into_directory:
        make_dirs(rootfs, dest_inner, owner, chown_new=True)
        target_inner = posixpath.join(dest_inner, name)
    else:
        make_dirs(rootfs, posixpath.dirname(dest_inner) or "/", owner, chown_new=True)
        target_inner = dest_inner
    host = _host(rootfs, posixpath.dirname(target_inner) or "/")
    out = os.path.join(host, posixpath.basename(target_inner))
    if os.path.lexists(out) and not os.path.islink(out) and os.path.isdir(out):
        raise InvalidArgument(f"cannot replace directory {target_inner} with a file")
    if os.path.lexists(out):
        os.unlink(out)
    shutil.copyfile(top, out)
    _apply(out, info, owner)


def write_file(rootfs: str, inner: str, data: bytes, owner: Ownership, mode: int = 0o644,
               mtime: float | None = None) -> None:
    """A file from a heredoc or a URL."""
    make_dirs(rootfs, posixpath.dirname(inner) or "/", owner, chown_new=True)
    host = os.path.join(_host(rootfs, posixpath.dirname(inner) or "/"), posixpath.basename(inner))
    if os.path.lexists(host):
        os.unlink(host)
    with open(host, "wb") as handle:
        handle.write(data)
    os.lchown(host, owner.uid, owner.gid)
    os.chmod(host, owner.mode if owner.mode is not None else mode)
    if mtime is not None:
        os.utime(host, (mtime, mtime))


def is_archive(path: str) -> bool:
    import tarfile

    try:
        return os.path.isfile(path) and tarfile.is_tarfile(path)
    except OSError:
        return False


def extract_archive(path: str, rootfs: str, dest_inner: str, owner: Ownership) -> None:
    """ADD of a local tar: unpacked into the destination directory; tarfile's ``tar``
    filter refuses members that would land outside it (absolute names, ``..``,
    links pointing out)."""
    import tarfile

    target = make_dirs(rootfs, dest_inner, owner, chown_new=True)
    try:
        with tarfile.open(path) as archive:
            archive.extractall(target, filter="tar")
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArgument(f"ADD: cannot unpack {os.path.basename(path)}: {exc}") from exc


def ownership(rootfs: Path, chown: str, chmod: int | None) -> Ownership:
    """``--chown=user[:group]`` through the image's passwd and group files; a user
    without a group gets the user's id as group id (Docker's rule)."""
    from dockyard.images.users import resolve_user_in

    _user, _, group = chown.partition(":")
    ids = resolve_user_in(rootfs, chown)
    return Ownership(ids.uid, ids.gid if group else ids.uid, chmod)
