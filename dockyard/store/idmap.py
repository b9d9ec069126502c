"""User-namespace remapping of a whole root (Docker's ``--userns-remap``).

With ``"userns_remap"`` set in ``engine.json``, every container of the root runs in
a user namespace whose root is an unprivileged host uid taken from
``/etc/subuid``/``/etc/subgid``, and everything the root keeps on disk for
containers is kept in *host* ids: layers are unpacked with their owners shifted
into the range, upper directories and volumes belong to the mapped root.  Docker
does the same (a store per remapping, layers chowned as they are unpacked), so a
root is remapped for good: ``<root>/snapshots/idmap`` records the mapping the
layers were unpacked for, and a root holding layers of another mapping is refused.

Crossing the boundary goes through one ``IdMap``: a tar read into the root
(layer, COPY, ``cp`` in) shifts ids up with :meth:`IdMap.to_host`; a tar written
from it (commit, build layers, export, ``cp`` out as a stream) shifts them down
with :meth:`IdMap.to_container`, so images and archives never carry host ids.

``userns_remap`` takes Docker's forms: ``default`` (the user ``dockremap``, made
with 65536 subordinate ids if the host lacks it, as dockerd does), ``USER`` or
``USER:GROUP`` (names or numbers, looked up in the subordinate id files), and
one form of Podman's: explicit ranges ``0:100000:65536`` (container, host, size;
several joined with ``,``) for uids and gids alike.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    import tarfile

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
DEFAULT_USER = "dockremap"  # dockerd's name: a host set up for Docker works as it is
DEFAULT_SIZE = 65536
NOBODY = 65534  # what the kernel shows for an id outside the mapping (overflowuid)


class IdRange(NamedTuple):
    container_id: int
    host_id: int
    size: int


def _shift(ranges: Sequence[IdRange], value: int, *, up: bool) -> int | None:
    for r in ranges:
        start, target = (r.container_id, r.host_id) if up else (r.host_id, r.container_id)
        if start <= value < start + r.size:
            return target + value - start
    return None


class IdMap(NamedTuple):
    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """A container's ids as the host stores them; an id outside the mapping is
        refused (it could only be written as a host id the container does not own)."""
        host_uid = _shift(self.uids, uid, up=True)
        host_gid = _shift(self.gids, gid, up=True)
        if host_uid is None or host_gid is None:
            raise InvalidArgument(f"owner {uid}:{gid} is outside the root's user namespace "
                                  f"mapping ({self.describe()})")
        return host_uid, host_gid

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Host ids as the container sees them (nobody for an unmapped one, as the
        kernel shows it)."""
        container_uid = _shift(self.uids, uid, up=False)
        container_gid = _shift(self.gids, gid, up=False)
        return (NOBODY if container_uid is None else container_uid,
                NOBODY if container_gid is None else container_gid)

    def header_to_container(self, info: tarfile.TarInfo) -> None:
        """A tar header made from a host file, given the container's ids (a
        ``TarWriter`` normaliser)."""
        info.uid, info.gid = self.to_container(info.uid, info.gid)

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of the container's root."""
        return self.to_host(0, 0)

    def oci(self) -> dict[str, list[dict[str, int]]]:
        """``linux.uidMappings``/``gidMappings`` of a runtime config."""
        def entries(ranges: tuple[IdRange, ...]) -> list[dict[str, int]]:
            return [{"containerID": r.container_id, "hostID": r.host_id, "size": r.size}
                    for r in ranges]
        return {"uidMappings": entries(self.uids), "gidMappings": entries(self.gids)}

    def describe(self) -> str:
        def text(ranges: tuple[IdRange, ...]) -> str:
            return ",".join(f"{r.container_id}:{r.host_id}:{r.size}" for r in ranges)
        return f"uids {text(self.uids)}, gids {text(self.gids)}"

    def marker(self) -> str:
        return self.describe()


NO_REMAP_MARKER = "none"


def subordinate_ranges(path: Path, names: Sequence[str]) -> tuple[IdRange, ...]:
    """The ranges ``/etc/subuid``-style ``path`` gives to any of ``names`` (a user's
    name and number), in file order, laid end to end from container id 0 as
    dockerd does."""
    ranges: list[IdRange] = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from exc
    next_id = 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3:
            raise InvalidArgument(f"{path}:{number}: expected NAME:START:COUNT, got {line!r}")
        if fields[0] not in names:
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            raise InvalidArgument(f"{path}:{number}: START and COUNT must be numbers, "
                                  f"got {line!r}") from None
        if start < 0 or count < 1:
            raise InvalidArgument(f"{path}:{number}: bad range {line!r}")
        ranges.append(IdRange(next_id, start, count))
        next_id += count
    return tuple(ranges)


def parse_ranges(text: str) -> tuple[IdRange, ...]:
    """``0:100000:65536[,…]``: container id, host id, size."""
    ranges = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            if len(fields) != 3:
                raise ValueError
            container_id, host_id, size = (int(f) for f in fields)
        except ValueError:
            raise InvalidArgument(f"userns_remap: {part!r} is not CONTAINER:HOST:SIZE") from None
        if container_id < 0 or host_id < 0 or size < 1:
            raise InvalidArgument(f"userns_remap: bad range {part!r}")
        ranges.append(IdRange(container_id, host_id, size))
    return tuple(ranges)


def _user_names(text: str, database: str) -> list[str]:
    """A user (or group) given by name or number, as both: the subordinate id files
    may name either."""
    if database == "passwd":
        try:
            entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
            return [entry.pw_name, str(entry.pw_uid)]
        except KeyError:
            raise InvalidArgument(f"userns_remap: no such user {text!r}") from None
    try:
        group = grp.getgrgid(int(text)) if text.isdigit() else grp.getgrnam(text)
        return [group.gr_name, str(group.gr_gid)]
    except KeyError:
        raise InvalidArgument(f"userns_remap: no such group {text!r}") from None


def _make_default_user() -> None:
    """dockerd's ``default``: a system user ``dockremap`` with 65536 subordinate ids
    (useradd picks free ranges from login.defs)."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        _call(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
               DEFAULT_USER])
    if not subordinate_ranges(SUBUID, [DEFAULT_USER]) or \
            not subordinate_ranges(SUBGID, [DEFAULT_USER]):
        start = _free_start()
        _call(["usermod", "--add-subuids", f"{start}-{start + DEFAULT_SIZE - 1}",
               "--add-subgids", f"{start}-{start + DEFAULT_SIZE - 1}", DEFAULT_USER])


def _free_start() -> int:
    """The first 65536-aligned host id past every range the files already give."""
    end = 100000
    for path in (SUBUID, SUBGID):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                end = max(end, int(fields[1]) + int(fields[2]))
    return end


def _call(argv: list[str]) -> None:
    import subprocess

    try:
        result = subprocess.run(argv, capture_output=True, text=True)
    except OSError as exc:
        raise InvalidArgument(f"userns_remap default: {argv[0]}: {exc.strerror}") from exc
    if result.returncode != 0:
        raise InvalidArgument(f"userns_remap default: {' '.join(argv)}: "
                              f"{result.stderr.strip()}")


def resolve(setting: str) -> IdMap | None:
    """The mapping an ``engine.json`` ``userns_remap`` value names; None when unset."""
    setting = setting.strip()
    if not setting:
        return None
    if setting[0].isdigit() and setting.count(":") >= 2:
        ranges = parse_ranges(setting)
        return _checked(IdMap(ranges, ranges), setting)
    if setting == "default":
        _make_default_user()
        setting = DEFAULT_USER
    user, _, group = setting.partition(":")
    user_names = _user_names(user, "passwd")
    group_names = _user_names(group, "group") if group else user_names
    uids = subordinate_ranges(SUBUID, user_names)
    gids = subordinate_ranges(SUBGID, group_names)
    if not uids:
        raise InvalidArgument(f"userns_remap: no subordinate uids for {user!r} in {SUBUID}")
    if not gids:
        raise InvalidArgument(f"userns_remap: no subordinate gids for "
                              f"{group or user!r} in {SUBGID}")
    return _checked(IdMap(uids, gids), setting)


def _checked(idmap: IdMap, setting: str) -> IdMap:
    for kind, ranges in (("uid", idmap.uids), ("gid", idmap.gids)):
        if _shift(ranges, 0, up=True) is None:
            raise InvalidArgument(f"userns_remap {setting!r}: container {kind} 0 is not mapped")
        if _shift(ranges, 0, up=True) == 0:
            raise InvalidArgument(f"userns_remap {setting!r}: container root would be the "
                                  "host's root")
    return idmap


def check_reachable(root: Path, idmap: IdMap) -> None:
    """The mapped root must walk down to the root's files (a container's rootfs,
    volumes and etc files live there): dockerd's check, made before a start fails
    with EACCES deep in the runtime."""
    uid, gid = idmap.root
    for directory in [root, *root.parents]:
        try:
            info = directory.stat()
        except OSError:
            continue  # not made yet: made 0711 (store.layout)
        if info.st_uid == uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid == gid:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            raise InvalidArgument(
                f"{directory}, a directory on the way to the root {root}, restricts access "
                f"to the remapped root uid/gid {uid}:{gid}; please fix by allowing 'o+x' "
                "permissions on it")


def check_marker(directory: Path, idmap: IdMap | None, *, holds_layers: bool) -> None:
    """Refuse a store holding layers unpacked for another mapping; record ours."""
    path = directory / "idmap"
    wanted = idmap.marker() if idmap else NO_REMAP_MARKER
    try:
        recorded = path.read_text().strip()
    except FileNotFoundError:
        recorded = NO_REMAP_MARKER
    if recorded == wanted:
        return
    if holds_layers:
        raise InvalidArgument(
            f"{directory.parent}: its layers were unpacked for user namespace mapping "
            f"{recorded!r}, engine.json userns_remap asks for {wanted!r}: give this "
            "mapping a --root of its own (as dockerd keeps a store per mapping), or set "
            "userns_remap back")
    from dockyard.store.atomic import atomic_write

    atomic_write(path, (wanted + "\n").encode(), 0o644)


__all__ = ["IdMap", "IdRange", "check_marker", "check_reachable", "resolve"]
