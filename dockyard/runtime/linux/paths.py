"""Resolve a container path inside a rootfs, following symlinks the way the
container would see them, and refusing any that lead outside the rootfs.

This is the check that keeps a malicious image (``/proc -> ../../../host``) from
making the runtime mount over host paths: every mount destination goes through
:func:`resolve_in_root` before mount(2) sees it.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import InvalidSpec

_MAX_SYMLINKS = 255


def resolve_in_root(root: str, unsafe: str, *, what: str = "path") -> str:
    """Host path of ``unsafe`` (a container path) with every symlink resolved in ``root``.

    Absolute symlink targets restart at ``root``.  A ``..`` that would climb above
    ``root`` raises ``InvalidSpec``.  Components that do not exist yet are kept
    as they are, so the result can be created afterwards.
    """
    pending = [c for c in unsafe.split("/") if c not in ("", ".")]
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not done:
                raise InvalidSpec(f"{what} {unsafe!r} resolves outside the rootfs")
            done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            done.append(part)
            continue
        except NotADirectoryError:
            raise InvalidSpec(f"{what} {unsafe!r}: a component is not a directory") from None
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise InvalidSpec(f"{what} {unsafe!r}: {os.strerror(errno.ELOOP)}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        pending = [c for c in target.split("/") if c not in ("", ".")] + pending
        if _climbs_out(done, target):
            raise InvalidSpec(
                f"{what} {unsafe!r} resolves outside the rootfs through symlink "
                f"/{'/'.join([*done, part])} -> {target}"
            )
    return os.path.join(root, *done)


def _climbs_out(done: list[str], target: str) -> bool:
    depth = 0 if target.startswith("/") else len(done)
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False
