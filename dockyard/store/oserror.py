"""OS errors a user can act on (a full disk, a read-only or foreign root) as one-line
``DockyardError``s naming the path and the cause.

Only errnos in :data:`USER_ERRNOS` are translated: any other ``OSError`` is a bug
(or something nobody anticipated) and keeps its traceback.  The causes are worded
as Go's syscall errors, which is how Docker prints them ("read-only file system").
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from dockyard.errors import DockyardError, InvalidArgument, PermissionDenied, Unavailable

CAUSES: dict[int, str] = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "not a directory",
    errno.ENAMETOOLONG: "file name too long",
}
USER_ERRNOS = frozenset(CAUSES)

_KINDS: dict[int, type[DockyardError]] = {
    errno.ENOSPC: Unavailable, errno.EDQUOT: Unavailable,  # free space, then retry
    errno.EROFS: PermissionDenied, errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.ENOTDIR: InvalidArgument, errno.ENAMETOOLONG: InvalidArgument,
}


def user_error(exc: OSError, path: object = None, *, prefix: str = "") -> DockyardError | None:
    """The one-line error for ``exc`` ("<prefix><path>: <cause>"), or None when its
    errno is not one a user can act on.  ``path`` defaults to the path the error
    names (``exc.filename``)."""
    if exc.errno not in USER_ERRNOS:
        return None
    named = path if path is not None else exc.filename
    if isinstance(named, bytes | os.PathLike):
        named = os.fsdecode(named)
    where = "" if named is None else f"{prefix}{named}: "
    kind = _KINDS[exc.errno]
    return kind(f"{where}{CAUSES[exc.errno]}")


@contextlib.contextmanager
def translated(path: object = None, *, prefix: str = "") -> Iterator[None]:
    """Raise the one-line error for a user-actionable ``OSError`` in the block (any
    other ``OSError`` passes through unchanged)."""
    try:
        yield
    except OSError as exc:
        error = user_error(exc, path, prefix=prefix)
        if error is None:
            raise
        raise error from exc
