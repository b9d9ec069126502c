"""COPY and ADD into a mounted step rootfs.

Both sides are hostile trees: the image's rootfs (``/app -> /`` or ``lib ->
/usr/lib``) and the build context or another stage.  Every destination path is
resolved inside the rootfs by the kernel in one step and written by descriptor
(:class:`dockyard.fs.inroot.Root`, :class:`dockyard.snapshots.unpack.Placer`), so a
symlink is followed the way it would be inside the container, never out to the
host.  Sources are read by descriptor too: the named source is followed inside
its own root, and what it resolves to must be something ``.dockerignore`` lets
in (a symlink in the context never reaches an excluded file, BuildKit's rule);
below it, symlinks are copied as symlinks.  Docker's rules: a directory source
copies its contents; several sources (or a glob) need a destination ending in
``/``; an existing directory destination receives the file; files are
root-owned unless ``--chown``; ``--chmod`` sets every mode; ADD unpacks local tar
archives (gzip, bzip2, xz) into the destination.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dockyard.errors import InvalidArgument, NotFound
from dockyard.fs.inroot import Root, clean, proc_path
from dockyard.fs.tartree import tar_info
from dockyard.snapshots.unpack import Placer, TarRules, copy_from, extract_tar, place_tree

if TYPE_CHECKING:
    from dockyard.store.idmap import IdMap


class Source(NamedTuple):
    """One matched source: ``root`` is the context directory or another rootfs."""

    root: str
    relative: str  # slash-separated, below root ("" for the root itself)
    path: str  # kept for callers' messages; the source is resolved in ``root`` again
    include: Callable[[str], bool]
    # whether to look below an excluded directory (a .dockerignore "!" may bring back
    # something under it); None: never
    descend: Callable[[str], bool] | None = None


class Ownership(NamedTuple):
    uid: int = 0
    gid: int = 0
    mode: int | None = None  # --chmod
    idmap: IdMap | None = None  # a remapped root: the ids above are stored shifted


def _rules(owner: Ownership, what: str = "COPY") -> TarRules:
    return TarRules(whiteouts=False, follow=True, overwrite=True,
                    owner=(owner.uid, owner.gid), mode=owner.mode, what=what,
                    idmap=owner.idmap)


def make_dirs(rootfs: str, inner: str, owner: Ownership, *, chown_new: bool) -> None:
    """``mkdir -p`` inside the rootfs; new directories 0755 (owned per --chown, else
    by the container's root)."""
    uid, gid = (owner.uid, owner.gid) if chown_new else (0, 0)
    if owner.idmap is not None:
        uid, gid = owner.idmap.to_host(uid, gid)

    def created(fd: int) -> None:
        if chown_new or owner.idmap is not None:
            os.chown(proc_path(fd), uid, gid)

    with Root(rootfs, what="image") as root:
        os.close(root.make_dirs(clean(inner), created=created))


def is_dir(rootfs: str, inner: str) -> bool:
    """Whether ``inner`` is a directory as the container sees it (links followed)."""
    with Root(rootfs, what="image") as root:
        try:
            os.close(root.open(inner, os.O_PATH | os.O_DIRECTORY))
        except OSError:
            return False
    return True


def _header(name: str, st: os.stat_result, dir_fd: int, entry_name: str) -> tarfile.TarInfo:
    linkname = os.readlink(entry_name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else ""
    return tar_info(name, st, linkname)


def _resolved(src: Root, relative: str, fd: int) -> str:
    """Where ``relative`` led inside ``src`` (its symlinks followed), as a path below it."""
    real_root = os.readlink(proc_path(src.fd))
    real = os.readlink(proc_path(fd))
    return "" if real == real_root else os.path.relpath(real, real_root)


def copy_source(source: Source, rootfs: str, dest_inner: str, owner: Ownership, *,
                into_directory: bool, parents: bool) -> None:
    """Copy one matched source to ``dest_inner`` (absolute in the container)."""
    with Root(source.root, what="build context") as src, Root(rootfs, what="image") as dst:
        try:
            top = src.open(source.relative, os.O_PATH)  # the source itself is followed
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{source.relative or '.'}: not found") from None
        try:
            resolved = _resolved(src, source.relative, top)
            if resolved and not source.include(resolved):
                raise NotFound(f"{source.relative}: not found (it leads to {resolved}, "
                               "which .dockerignore excludes)")
            info = os.fstat(top)
            if stat.S_ISDIR(info.st_mode):
                if parents and source.relative:
                    dest_inner = posixpath.join(dest_inner, source.relative)
                _copy_directory(source, resolved, top, dst, dest_inner, owner)
                return
            if parents and source.relative:
                dest_inner = posixpath.join(dest_inner, posixpath.dirname(source.relative))
            name = posixpath.basename(source.relative) or "file"
            target = posixpath.join(dest_inner, name) if into_directory else dest_inner
            existing = dst.lstat(target)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(f"cannot replace directory {target} with a file")
            placer = Placer(dst, "/", _rules(owner))
            try:
                header = tar_info(target, info)
                placer.place_member(header, copy_from(top, ""))
            finally:
                placer.close()
        finally:
            os.close(top)


def _copy_directory(source: Source, resolved: str, top: int, dst: Root, dest_inner: str,
                    owner: Ownership) -> None:
    def below(relative: str) -> str:
        return f"{resolved}/{relative}" if resolved else relative

    make_dirs(dst.path, dest_inner, owner, chown_new=True)
    placer = Placer(dst, dest_inner, _rules(owner))
    try:
        # dockerignore (a "!" below an excluded directory may still bring some back);
        # sockets, fifos and devices are not copied (as BuildKit)
        place_tree(placer, top, include=lambda r: source.include(below(r)),
                   descend=lambda r: bool(source.descend and source.descend(below(r))),
                   special=False)
    finally:
        placer.close()


def write_file(rootfs: str, inner: str, data: bytes, owner: Ownership, mode: int = 0o644,
               mtime: float | None = None) -> None:
    """A file from a heredoc or a URL."""
    header = tarfile.TarInfo(inner)
    header.size, header.mode = len(data), mode
    header.mtime = int(mtime) if mtime is not None else int(time.time())
    with Root(rootfs, what="image") as dst:
        placer = Placer(dst, "/", _rules(owner))
        try:
            placer.place_member(header, lambda fd: _write_all(fd, data))
        finally:
            placer.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def is_archive(path: str) -> bool:
    try:
        return os.path.isfile(path) and tarfile.is_tarfile(path)
    except OSError:
        return False


def extract_archive(path: str, rootfs: str, dest_inner: str, owner: Ownership) -> None:
    """ADD of a local tar: unpacked into the destination directory by dockyard's one tar
    reader (members placed inside the rootfs by descriptor, ``..`` refused); owners
    and modes come from the archive, as Docker's ADD keeps them."""
    make_dirs(rootfs, dest_inner, owner, chown_new=True)
    with Root(rootfs, what="image") as dst, open(path, "rb") as stream:
        extract_tar(stream, dst, dest_inner, TarRules(whiteouts=False, follow=True,
                                                      overwrite=True, what="ADD",
                                                      idmap=owner.idmap))


def ownership(rootfs: Path, chown: str, chmod: int | None,
              idmap: IdMap | None = None) -> Ownership:
    """``--chown=user[:group]`` through the image's passwd and group files; a user
    without a group gets the user's id as group id (Docker's rule)."""
    from dockyard.images.users import resolve_user_in

    if not chown:
        return Ownership(mode=chmod, idmap=idmap)
    _user, _, group = chown.partition(":")
    ids = resolve_user_in(rootfs, chown)
    return Ownership(ids.uid, ids.gid if group else ids.uid, chmod, idmap)
