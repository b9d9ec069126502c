"""Container records in SQLite: what exists, its spec, and what happened to it."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from dockyard.engine import names
from dockyard.engine.spec import (
    BlkioThrottleDevice,
    BlkioWeightDevice,
    ContainerSpec,
    Healthcheck,
    MountSpec,
    PortSpec,
    RestartPolicy,
    TmpfsMount,
    Ulimit,
)
from dockyard.errors import Conflict, ContainerNotFound
from dockyard.store.db import Database, Transaction

MIGRATIONS = [
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image TEXT NOT NULL,
        image_id TEXT NOT NULL,
        manifest_digest TEXT NOT NULL,
        spec TEXT NOT NULL,
        created TEXT NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL DEFAULT '',
        finished_at TEXT NOT NULL DEFAULT '',
        restart_count INTEGER NOT NULL DEFAULT 0,
        oom_killed INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        supervisor_pid INTEGER NOT NULL DEFAULT 0,
        stopped_by_user INTEGER NOT NULL DEFAULT 0
    )
    """,
    # a pid is an identity only with its start time (see supervise.process)
    """
    ALTER TABLE containers ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN supervisor_start INTEGER NOT NULL DEFAULT 0
    """,
]


# states in which a container counts as running (Docker: State.Running is true)
ACTIVE_STATES = ("running", "paused", "restarting")


class ContainerRecord(NamedTuple):
    id: str
    name: str
    image: str
    image_id: str
    manifest_digest: str
    spec: ContainerSpec
    created: str
    state: str  # created | running | restarting | exited | dead (paused: from the runtime)
    pid: int
    exit_code: int
    started_at: str
    finished_at: str
    restart_count: int
    oom_killed: bool
    error: str
    supervisor_pid: int
    stopped_by_user: bool
    pid_start: int = 0  # the start times of pid and supervisor_pid (/proc/PID/stat)
    supervisor_start: int = 0


def spec_to_json(spec: ContainerSpec) -> str:
    return json.dumps(spec._asdict())


_THROTTLE_FIELDS = ("device_read_bps", "device_write_bps", "device_read_iops",
                    "device_write_iops")
_NESTED = ("tmpfs", "ulimits", "mounts", "ports", "blkio_weight_device", *_THROTTLE_FIELDS)


@functools.lru_cache(maxsize=1024)
def spec_from_json(text: str) -> ContainerSpec:
    """A stored spec; fields added since it was written keep their defaults.  The same
    text is parsed once (``ps`` of many containers, a long-lived ``serve``): a spec is
    never changed in place."""
    raw: dict[str, Any] = json.loads(text)
    tupled: dict[str, Any] = {k: tuple(v) if isinstance(v, list) and k not in _NESTED
                              else v for k, v in raw.items()}
    tupled["restart"] = RestartPolicy(*raw["restart"])
    tupled["tmpfs"] = tuple(TmpfsMount(*t) for t in raw.get("tmpfs") or [])
    tupled["ulimits"] = tuple(Ulimit(*u) for u in raw.get("ulimits") or [])
    tupled["mounts"] = tuple(MountSpec(*m) for m in raw.get("mounts") or [])
    tupled["ports"] = tuple(PortSpec(*p) for p in raw.get("ports") or [])
    tupled["blkio_weight_device"] = tuple(BlkioWeightDevice(*d)
                                          for d in raw.get("blkio_weight_device") or [])
    for key in _THROTTLE_FIELDS:
        tupled[key] = tuple(BlkioThrottleDevice(*d) for d in raw.get(key) or [])
    if raw.get("healthcheck"):
        check = raw["healthcheck"]
        tupled["healthcheck"] = Healthcheck(tuple(check[0]), *check[1:])
    return ContainerSpec(**tupled)


_COLUMNS = ("id, name, image, image_id, manifest_digest, spec, created, state, pid, exit_code, "
            "started_at, finished_at, restart_count, oom_killed, error, supervisor_pid, "
            "stopped_by_user, pid_start, supervisor_start")


def _record(row: tuple[Any, ...]) -> ContainerRecord:
    values = list(row)
    values[5] = spec_from_json(values[5])
    values[13] = bool(values[13])
    values[16] = bool(values[16])
    return ContainerRecord(*values)


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("containers", MIGRATIONS)

    def add(self, record: ContainerRecord, *, generated_name: bool = False) -> ContainerRecord:
        """The record stored, as stored: a ``generated_name`` taken meanwhile (a create
        beside this one drew the same: Docker's generator has ~550 pairs here) is drawn
        again inside the transaction, as dockerd's registrar retries, instead of
        failing a ``run`` that named nothing."""
        with self.db.transaction("creating a container") as conn:
            def taken(name: str) -> bool:
                return bool(conn.execute("SELECT 1 FROM containers WHERE name=?",
                                         (name,)).fetchone())

            if taken(record.name):  # (one query when the name is free: a create's path)
                if not generated_name:
                    raise Conflict(f'Conflict. The container name "/{record.name}" is already '
                                   f'in use by container "{self._id_of(conn, record.name)}". '
                                   "You have to remove (or rename) that container to be able "
                                   "to reuse that name.")
                name = names.generate(taken)
                record = record._replace(name=name, spec=record.spec._replace(name=name))
            values = list(record)
            values[5] = spec_to_json(record.spec)
            conn.execute(f"INSERT INTO containers ({_COLUMNS}) VALUES "
                         f"({', '.join('?' * len(values))})", values)
        return record

    @staticmethod
    def _id_of(conn: Any, name: str) -> str:
        row = conn.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
        return str(row[0]) if row else ""

    def update(self, container_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{key}=?" for key in fields)
        with self.db.transaction("updating a container") as conn:
            conn.execute(f"UPDATE containers SET {sets} WHERE id=?",
                         [*fields.values(), container_id])

    def remove(self, container_id: str, *, tx: Transaction | None = None) -> None:
        with contextlib.nullcontext(tx) if tx is not None else \
                self.db.transaction("removing a container") as conn:
            conn.execute("DELETE FROM containers WHERE id=?", (container_id,))

    def all(self, labels: Mapping[str, str] | None = None) -> list[ContainerRecord]:
        """Every container, newest first; with ``labels``, only those that carry all
        of them (picked by the query: a project's containers among many)."""
        wanted = dict(labels or {})
        plain = {k: v for k, v in wanted.items() if '"' not in k and "\\" not in k}
        where = " AND ".join("json_extract(spec, ?) = ?" for _ in plain)
        args = [arg for key, value in plain.items() for arg in (f'$.labels."{key}"', value)]
        records = [_record(r) for r in self.db.query(
            f"SELECT {_COLUMNS} FROM containers {'WHERE ' + where if where else ''} "
            "ORDER BY created DESC", args)]
        if len(plain) == len(wanted):
            return records
        return [r for r in records if all(r.spec.labels.get(k) == v for k, v in wanted.items())]

    def find(self, ref: str) -> ContainerRecord:
        """By full id, name, or unique id prefix; Docker's error otherwise."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM containers WHERE id=? OR name=?",
                             (ref, ref.lstrip("/")))
        if not rows and len(ref) >= 1:
            rows = self.db.query(f"SELECT {_COLUMNS} FROM containers WHERE id LIKE ?",
                                 (f"{ref}%",))
        if len(rows) != 1:
            raise ContainerNotFound(ref) if not rows else Conflict(
                f"multiple containers match {ref!r}")
        return _record(rows[0])

    def image_ids(self) -> set[str]:
        """The image config digest of every container."""
        return {r[0] for r in self.db.query("SELECT DISTINCT image_id FROM containers")}

    def users_of_image(self, manifest_digest: str) -> list[tuple[str, bool]]:
        """The containers made from an image: (id, whether it runs)."""
        return [(r[0], r[1] in ACTIVE_STATES) for r in self.db.query(
            "SELECT id, state FROM containers WHERE manifest_digest=?", (manifest_digest,))]
