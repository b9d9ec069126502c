"""Named volumes with the local driver: a directory under the root, or a filesystem
(``--opt type=tmpfs --opt o=size=64m``, ``--opt type=none --opt device=/srv --opt o=bind``)
described here as mount data and mounted by the engine (mounting lives in
``snapshots.mount``; this layer sits below it).
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.fs.tree import remove_tree
from dockyard.store.db import Database

MIGRATIONS = [
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        options TEXT NOT NULL,
        labels TEXT NOT NULL,
        created TEXT NOT NULL,
        anonymous INTEGER NOT NULL
    )
    """,
]

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NAME_MAX = 255  # the volume's directory is named after it


class Volume(NamedTuple):
    name: str
    driver: str
    options: dict[str, str]
    labels: dict[str, str]
    created: str
    anonymous: bool

    def mount_plan(self, data_dir: Path) -> tuple[str, str, tuple[str, ...]] | None:
        """(type, source, options) to mount at ``data_dir`` first, or None for a plain dir."""
        kind = self.options.get("type")
        if not kind:
            return None
        options = tuple(o for o in self.options.get("o", "").split(",") if o)
        if kind == "none":
            device = self.options.get("device", "")
            if not device.startswith("/"):
                raise InvalidArgument(f"volume {self.name}: type=none needs device=/host/path")
            return ("bind", device, tuple(o for o in options if o != "bind"))
        return (kind, self.options.get("device", kind), options)


class VolumeStore:
    def __init__(self, root: Path, db: Database) -> None:
        self.root = root
        self.db = db
        db.migrate("volumes", MIGRATIONS)
        if not db.read_only:  # (a reader — the warm path's warm-up — makes nothing)
            root.mkdir(parents=True, exist_ok=True)
        # (action, name) for the engine's event log: create, destroy
        self.on_event: Callable[[str, str], None] | None = None

    def data_dir(self, name: str) -> Path:
        return self.root / name / "_data"

    def create(self, name: str | None = None, *, options: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, anonymous: bool = False) -> Volume:
        """Create (or, like Docker, return the existing volume of that name)."""
        name = name or secrets.token_hex(32)
        if len(name) > NAME_MAX:
            raise InvalidArgument(f"create {name[:32]}...: a volume name has at most "
                                  f"{NAME_MAX} characters")
        if not _NAME.match(name):
            raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a '
                                  "local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are "
                                  "allowed")
        for key in options or {}:
            if key not in ("type", "device", "o"):
                raise InvalidArgument(f"invalid option key: {key!r}")
        existing = self.find(name)
        if existing is not None:
            return existing
        volume = Volume(name, "local", dict(options or {}), dict(labels or {}),
                        datetime.datetime.now(datetime.UTC).isoformat(), anonymous)
        self.data_dir(name).mkdir(parents=True, exist_ok=True)
        with self.db.transaction("creating a volume") as conn:
            conn.execute("INSERT OR IGNORE INTO volumes VALUES (?, ?, ?, ?, ?, ?)",
                         (name, "local", json.dumps(volume.options), json.dumps(volume.labels),
                          volume.created, int(anonymous)))
        if self.on_event is not None:
            self.on_event("create", name)
        return volume

    def give_group(self, name: str, gid: int, *, on_root_mismatch: bool = False) -> int:
        """A pod's ``fsGroup`` (kube): the volume's tree group-owned by ``gid``, setgid
        directories (``fs.ownership``); with ``on_root_mismatch`` only when its top is
        not so already.  How many entries were changed."""
        from dockyard.fs import ownership

        data = self.data_dir(self.get(name).name)
        if on_root_mismatch and not ownership.needs_change(data, gid):
            return 0
        return ownership.give_group(data, gid)

    def find(self, name: str) -> Volume | None:
        rows = self.db.query("SELECT * FROM volumes WHERE name=?", (name,))
        return _volume(rows[0]) if rows else None

    def get(self, name: str) -> Volume:
        volume = self.find(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def all(self) -> list[Volume]:
        return [_volume(r) for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def remove(self, name: str, users: list[str]) -> None:
        self.get(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        remove_tree(self.root / name, ignore_errors=True)  # a container filled it
        with self.db.transaction("removing a volume") as conn:
            conn.execute("DELETE FROM volumes WHERE name=?", (name,))
        if self.on_event is not None:
            self.on_event("destroy", name)

    def inspect(self, volume: Volume) -> dict[str, Any]:
        return {"CreatedAt": volume.created, "Driver": volume.driver,
                "Labels": volume.labels or None, "Mountpoint": str(self.data_dir(volume.name)),
                "Name": volume.name, "Options": volume.options or None, "Scope": "local"}


def _volume(row: tuple[Any, ...]) -> Volume:
    return Volume(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], bool(row[5]))
