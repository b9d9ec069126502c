"""Paths inside a root, resolved by the kernel in one step and then used by descriptor.

Why not a path string: a string checked and then used is resolved twice, and a
container (or a layer written to race us) can swap a directory for a symlink in
between.  ``openat2(RESOLVE_IN_ROOT)`` resolves every component — symlinks,
absolute link targets and ``..`` included — as if the root were ``/``, atomically,
and hands back a descriptor; work on the entry then goes through that descriptor
(``fchmod``, ``fchown``, ``futimens``) or names one component relative to it with
``O_NOFOLLOW``/``AT_SYMLINK_NOFOLLOW``.

Metadata of an entry held only by an ``O_PATH`` descriptor (a directory, a device,
a FIFO: things one must not open for reading) is changed through
``/proc/self/fd/N``: that magic link names the very inode the descriptor holds,
never a path someone can redirect.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat
from collections.abc import Callable
from typing import Self

from dockyard.errors import InvalidArgument, NotFound

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic)

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
PATH_MAX = 4096
_RETRIES = 64  # openat2 answers EAGAIN when a rename raced a ".." walk


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = IN_ROOT) -> int:
    """The raw system call; raises ``OSError`` with the errno, like ``os.open``."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    encoded = os.fsencode(path)
    for _ in range(_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, dirfd, encoded, ctypes.byref(how),
                           ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "path kept changing while it was resolved", path)


def proc_path(fd: int) -> str:
    """The magic link naming exactly the inode ``fd`` holds (for O_PATH descriptors)."""
    return f"/proc/self/fd/{fd}"


def clean(inner: str) -> list[str]:
    """A container path as components below the root; ``..`` never climbs above it
    (lexically, as Docker cleans ``cp`` and ``COPY`` paths first)."""
    normal = posixpath.normpath("/" + inner)
    return [part for part in normal.split("/") if part]


class Root:
    """A directory opened once; every path below it is resolved inside it.

    ``follow`` (the default) resolves symlinks the way a process chrooted there
    would: that is what ``cp`` and ``COPY`` mean by a path in a container.  Layers
    use ``follow=False``: every component must be a real directory, and an entry
    below a symlink is refused.
    """

    def __init__(self, path: str | os.PathLike[str], *, what: str = "root") -> None:
        self.path = os.fspath(path)
        self.what = what
        try:
            self.fd = os.open(self.path, O_PATH_DIR)
        except FileNotFoundError:
            raise NotFound(f"{what} {self.path} does not exist") from None
        except NotADirectoryError:
            raise InvalidArgument(f"{what} {self.path} is not a directory") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- resolution ---------------------------------------------------------------
    def open(self, inner: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
        """``inner`` resolved in the root (symlinks followed inside it)."""
        parts = clean(inner)
        return openat2(self.fd, "/".join(parts) or ".", flags, mode)

    def lstat(self, inner: str) -> os.stat_result | None:
        """The entry itself (a final symlink not followed); None when missing."""
        parts = clean(inner)
        if not parts:
            return os.stat(self.fd)
        try:
            parent = self.open_dir(parts[:-1])
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(parent)

    def open_dir(self, parts: list[str], *, follow: bool = True) -> int:
        """An O_PATH descriptor of the directory ``parts`` (which must exist)."""
        if follow:
            return openat2(self.fd, "/".join(parts) or ".", O_PATH_DIR)
        fd = os.dup(self.fd)
        try:
            for part in parts:
                child = _open_child_dir(fd, part, self.what, "/".join(parts))
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_dirs(self, parts: list[str], *, follow: bool = True, mode: int = 0o755,
                  created: Callable[[int], None] | None = None) -> int:
        """``mkdir -p`` inside the root; an O_PATH descriptor of the last directory.

        ``created`` is called with a descriptor of each directory this made (to set
        its owner).  An existing non-directory in the way is an error naming it.
        """
        fd = os.dup(self.fd)
        try:
            for depth in range(len(parts)):
                child = self._step(fd, parts, depth, follow=follow, mode=mode,
                                   created=created)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _step(self, fd: int, parts: list[str], depth: int, *, follow: bool, mode: int,
              created: Callable[[int], None] | None) -> int:
        part, where = parts[depth], "/" + "/".join(parts[:depth + 1])
        for _ in range(_RETRIES):
            try:
                if follow:
                    return openat2(self.fd, where.lstrip("/"), O_PATH_DIR)
                return _open_child_dir(fd, part, self.what, where)
            except FileNotFoundError:
                pass
            except NotADirectoryError:
                raise InvalidArgument(f"{self.what}: {where} is not a directory") from None
            try:
                os.mkdir(part, mode, dir_fd=fd)
            except FileExistsError:
                continue  # made by someone else meanwhile, or a dangling symlink
            child = os.open(part, O_PATH_DIR | os.O_NOFOLLOW, dir_fd=fd)
            os.chmod(proc_path(child), mode)  # not narrowed by the umask
            if created is not None:
                created(child)
            return child
        raise InvalidArgument(f"{self.what}: cannot create {where}: a dangling symlink "
                              "is in the way")

    def parent(self, inner: str, *, follow: bool = True, create: bool = False,
               mode: int = 0o755) -> tuple[int, str]:
        """The directory holding ``inner`` (O_PATH) and its last component."""
        parts = clean(inner)
        if not parts:
            raise InvalidArgument(f"{self.what}: {inner!r} names the root itself")
        if create:
            return self.make_dirs(parts[:-1], follow=follow, mode=mode), parts[-1]
        return self.open_dir(parts[:-1], follow=follow), parts[-1]


def _open_child_dir(fd: int, part: str, what: str, where: str) -> int:
    """One component, never following a symlink: a symlink or file there is refused."""
    try:
        return os.open(part, O_PATH_DIR | os.O_NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise InvalidArgument(f"{what}: {where!r} is below the symlink {part!r}") from None
    raise InvalidArgument(f"{what}: {where!r}: {part!r} is not a directory") from None


def lexists_beneath(top: str, relative: str) -> bool:
    """Whether ``relative`` names an entry below ``top`` without any symlink on the way
    (how overlayfs looks a name up in a lower layer)."""
    try:
        top_fd = os.open(top, O_PATH_DIR)
    except OSError:
        return False
    try:
        fd = openat2(top_fd, relative.lstrip("/") or ".", os.O_PATH | os.O_NOFOLLOW,
                     resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
    except OSError:
        return False
    finally:
        os.close(top_fd)
    os.close(fd)
    return True


def read_regular_file(root: Root, inner: str, limit: int) -> bytes | None:
    """A small regular file from inside ``root``, or None when there is none.

    What a hostile image can put at ``/etc/passwd`` is answered without harm: a
    symlink is resolved inside the root, a FIFO or device is not read (opened
    non-blocking, then refused by type), and more than ``limit`` bytes is an error.
    """
    try:
        fd = root.open(inner, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EACCES):
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > limit:
            raise InvalidArgument(f"{inner} in {root.what} is larger than {limit} bytes")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{inner} in {root.what} is larger than {limit} bytes")
        return data
    finally:
        os.close(fd)
