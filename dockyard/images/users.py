"""User and group names → numeric ids, through an image's /etc/passwd and /etc/group.

Shared by containers (``--user``), exec, and the builder (``USER``, ``--chown``):
the names mean what they mean inside the image, never on the host.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from dockyard.errors import InvalidArgument, NotFound
from dockyard.fs.inroot import Root, read_regular_file

ACCOUNT_FILE_LIMIT = 4 << 20  # bytes: a passwd or group file past this is refused
MAX_ID = 2**31 - 1  # runc's maxId


class UserIds(NamedTuple):
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def resolve_user_in(rootfs: str | os.PathLike[str], user: str) -> UserIds:
    """``user`` through the passwd and group files of the image mounted at ``rootfs``.

    The files are what the image says they are: resolved inside ``rootfs`` (a
    symlink to a host file reads the image's own path), regular files only (a FIFO
    or ``/dev/zero`` reads as absent), at most ``ACCOUNT_FILE_LIMIT`` bytes."""
    passwd, group = account_files(rootfs)
    return resolve_user(user, passwd, group)


def resolve_groups_in(rootfs: str | os.PathLike[str], groups: tuple[str, ...]
                      ) -> tuple[int, ...]:
    """``--group-add``/compose ``group_add``: numbers as they are, names through the
    image's group file."""
    if all(g.isdigit() for g in groups):
        return tuple(int(g) for g in groups)
    _passwd, group = account_files(rootfs)
    out = []
    for name in groups:
        out.append(int(name) if name.isdigit() else _group_id(name, group))
        _check_range(out[-1])
    return tuple(out)


def account_files(rootfs: str | os.PathLike[str]) -> tuple[str, str]:
    with Root(rootfs, what="image root") as root:
        texts = [read_regular_file(root, f"/etc/{name}", ACCOUNT_FILE_LIMIT)
                 for name in ("passwd", "group")]
    return tuple(  # type: ignore[return-value]
        (text or b"").decode("utf-8", "replace") for text in texts)


def resolve_user(user: str, passwd: str, group: str) -> UserIds:
    """``user``, ``uid``, ``user:group``, ``uid:gid`` against the image's files.

    Docker's rules (moby's ``getUser`` over runc's ``GetExecUser``): a number is
    always a uid (a gid after the colon), and one without an entry is taken as it
    is; the additional gids are the primary gid first, then, when no group is named,
    every group whose member list names the user."""
    name, _, group_name = user.partition(":")
    uid: int | None = int(name) if name.isdigit() else None
    gid = 0
    matched = ""
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or not fields[2].isdigit() or not fields[3].isdigit():
            continue
        if (int(fields[2]) == uid if uid is not None
                else fields[0] == name if name else fields[2] == "0"):
            uid, gid, matched = int(fields[2]), int(fields[3]), fields[0]
            break
    if uid is None:
        if name:
            raise NotFound(f"unable to find user {name}: no matching entries in passwd file")
        uid = 0
    _check_range(uid)
    supplementary: list[int] = []
    if group_name:
        gid = int(group_name) if group_name.isdigit() else _group_id(group_name, group)
        _check_range(gid)
    elif matched:
        supplementary = [int(f[2]) for f in (line.split(":") for line in group.splitlines())
                         if len(f) >= 4 and f[2].isdigit() and matched in f[3].split(",")]
    return UserIds(uid, gid, (gid, *supplementary))


def _check_range(value: int) -> None:
    if value > MAX_ID:
        raise InvalidArgument(f"uids and gids must be in range 0-{MAX_ID}")


def _group_id(name: str, group: str) -> int:
    for line in group.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise NotFound(f"unable to find group {name}: no matching entries in group file")
