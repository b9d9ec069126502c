"""Walking, measuring, removing and copying trees someone else made (archiving them:
``fs.tartree``, on the same walk).

``os.walk``, ``shutil.rmtree``, ``shutil.copytree`` and ``tarfile.add`` recurse
(a container that makes a tree 1,100 levels deep crashes them with
RecursionError) and re-resolve path strings (a container that swaps a directory
for a symlink mid-walk sends them to the host).  Everything here keeps an
explicit stack with one directory descriptor per level and names one component
at a time relative to it, never following a symlink.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
from collections.abc import Callable, Iterator
from typing import NamedTuple

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Entry(NamedTuple):
    """One entry of a walk; ``dir_fd`` is valid only while the walk stands on it."""

    dir_fd: int
    name: str
    relative: str  # slash-separated below the top
    stat: os.stat_result  # of the entry itself (a symlink is not followed)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.stat.st_mode)


class _Frame(NamedTuple):
    fd: int
    prefix: str
    names: list[str]  # still to visit, last first
    entry: Entry | None  # the directory itself (None for the top)


def open_dir(dir_fd: int, name: str) -> int:
    """A readable descriptor of directory ``name`` below ``dir_fd``, never through a
    symlink; a deep tree may need more descriptors than the soft limit allows."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.EMFILE or not _raise_fd_limit():
            raise
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _raise_fd_limit() -> bool:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= hard:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return True


def _listing(fd: int) -> list[str]:
    return sorted(os.listdir(fd), reverse=True)


def walk(top_fd: int, *, descend: Callable[[Entry], bool] | None = None,
         leave: Callable[[Entry], None] | None = None) -> Iterator[Entry]:
    """Every entry below ``top_fd`` (any descriptor of a directory), depth first, names
    in order.  A directory is yielded before its contents and entered afterwards
    unless ``descend(entry)`` says no; ``leave(entry)`` runs once its contents are
    done (directory times are set there).  A directory swapped for something else
    while the walk stands before it is skipped, never followed."""
    first = open_dir(top_fd, ".")  # an O_PATH descriptor cannot be listed
    stack = [_Frame(first, "", _listing(first), None)]
    try:
        while stack:
            frame = stack[-1]
            if not frame.names:
                stack.pop()
                os.close(frame.fd)
                if frame.entry is not None and leave is not None:
                    leave(frame.entry)
                continue
            name = frame.names.pop()
            try:
                st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone meanwhile (a running container)
            entry = Entry(frame.fd, name, frame.prefix + name, st)
            yield entry
            if not entry.is_dir or (descend is not None and not descend(entry)):
                continue
            try:
                child = open_dir(frame.fd, name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                continue  # became a symlink
            stack.append(_Frame(child, entry.relative + "/", _listing(child), entry))
    finally:
        for frame in stack:
            os.close(frame.fd)


def remove_at(dir_fd: int, name: str, *, ignore_errors: bool = False) -> None:
    """Remove ``name`` below ``dir_fd`` whatever it is: a whole tree, iteratively.
    ``ignore_errors`` removes what it can (a busy mount point stays)."""
    try:
        _remove_tree_at(dir_fd, name, ignore_errors)
    except OSError:
        if not ignore_errors:
            raise


def _remove_tree_at(dir_fd: int, name: str, ignore_errors: bool) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    first = open_dir(dir_fd, name)
    stack = [(first, dir_fd, name, _listing(first))]
    try:
        while stack:
            fd, parent, own_name, names = stack[-1]
            if not names:
                stack.pop()
                os.close(fd)
                _attempt(os.rmdir, own_name, parent, ignore_errors)
                continue
            child = names.pop()
            try:
                os.unlink(child, dir_fd=fd)
            except FileNotFoundError:
                continue
            except IsADirectoryError:
                try:
                    child_fd = open_dir(fd, child)
                    stack.append((child_fd, fd, child, _listing(child_fd)))
                except OSError:
                    if not ignore_errors:
                        raise
            except OSError:
                if not ignore_errors:
                    raise
    finally:
        for fd, *_rest in stack:
            os.close(fd)


def _attempt(operation: Callable[..., None], name: str, dir_fd: int,
             ignore_errors: bool) -> None:
    try:
        operation(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError:
        if not ignore_errors:
            raise


def remove_tree(path: str | os.PathLike[str], *, ignore_errors: bool = False) -> None:
    """``rm -rf PATH`` without recursion and without following any symlink below it
    (the drop-in for ``shutil.rmtree`` on trees a container or a layer made); a
    missing PATH is no error."""
    path = os.fspath(path).rstrip("/") or "/"
    parent, name = os.path.split(path)
    try:
        parent_fd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        remove_at(parent_fd, name, ignore_errors=ignore_errors)
    finally:
        os.close(parent_fd)


def tree_size(path: str | os.PathLike[str]) -> int:
    """Bytes of the regular files below ``path`` (what ``df``-style reports count)."""
    try:
        top = os.open(os.fspath(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    try:
        return sum(e.stat.st_size for e in walk(top) if stat.S_ISREG(e.stat.st_mode))
    finally:
        os.close(top)


def copy_data(source_fd: int, out_fd: int, *, offset: int | None = None,
              size: int | None = None) -> int:
    """Bytes from ``source_fd`` (from ``offset``, or its position) to ``out_fd``, by
    the kernel: copy_file_range within a filesystem, sendfile across filesystems
    (where copy_file_range answers EXDEV).  Stops at ``size`` bytes or at the end;
    returns the count."""
    done = 0
    use_range = True
    while size is None or done < size:
        want = (1 << 30) if size is None else min(size - done, 1 << 30)
        position = None if offset is None else offset + done
        try:
            if use_range:
                moved = os.copy_file_range(source_fd, out_fd, want, offset_src=position)
            else:
                moved = os.sendfile(out_fd, source_fd, position, want)
        except OSError as exc:
            if not use_range or exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                                                   errno.EOPNOTSUPP):
                raise
            use_range = False
            continue
        if moved == 0:
            break
        done += moved
    return done
