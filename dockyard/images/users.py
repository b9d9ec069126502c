"""User and group names → numeric ids, through an image's /etc/passwd and /etc/group.

Shared by containers (``--user``), exec, and the builder (``USER``, ``--chown``):
the names mean what they mean inside the image, never on the host.
"""

from __future__ import annotations

from typing import NamedTuple

from dockyard.errors import NotFound


class UserIds(NamedTuple):
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def resolve_user(user: str, passwd: str, group: str) -> UserIds:
    """``user``, ``uid``, ``user:group``, ``uid:gid`` against the image's files."""
    name, _, group_name = user.partition(":")
    uid: int | None = int(name) if name.isdigit() else None
    gid: int | None = None
    home_user = None
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and (fields[0] == name or (uid is not None and fields[2] == name)):
            uid, gid, home_user = int(fields[2]), int(fields[3]), fields[0]
            break
    if uid is None:
        raise NotFound(f"unable to find user {name}: no matching entries in passwd file")
    if group_name:
        gid = int(group_name) if group_name.isdigit() else _group_id(group_name, group)
    extra = tuple(int(f[2]) for f in (line.split(":") for line in group.splitlines())
                  if len(f) >= 4 and home_user and home_user in f[3].split(",")
                  and f[2].isdigit())
    return UserIds(uid, gid if gid is not None else 0, extra)


def _group_id(name: str, group: str) -> int:
    for line in group.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2])
    raise NotFound(f"unable to find group {name}: no matching entries in group file")
