"""``GET /containers/json``: the list, kept ready between changes.

``docker ps`` of many containers must cost the server next to nothing, so the rows
are not rebuilt per request.  ``ContainerList`` keeps each container's row as JSON
text, built once per change of that container: a look at what changed
(``engine.container_watch``: SQLite's version and an inotify watch on each
container's folder) comes first, then only the containers it names are read again
(refresh, inspect, row).  What a change leaves no trace of is read live at every
request, and cheaply: whether a running container is paused (its freezer, one small
read) and whether its supervisor still runs (the engine re-adopts one that died, as
``ps`` does); and the ``Status`` text, which moves with the clock.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import time
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.engine.container_watch import ContainerWatch
from dockyard.engine.containers import ContainerService, supervised
from dockyard.engine.engine import Engine
from dockyard.engine.records import ACTIVE_STATES, ContainerRecord
from dockyard.errors import ContainerNotFound, DockyardError, InvalidArgument
from dockyard.runtime.linux.cgroup_peek import STATE_FILE, frozen

log = logging.getLogger("dockyard.api")


def register(router: Router) -> None:
    lister = ContainerList()
    router.app[LIST] = lister

    async def close(_app: web.Application) -> None:
        lister.close()

    router.app.on_cleanup.append(close)
    router.add("GET", "/containers/json", list_containers)


def epoch(stamp: str) -> int:
    """An RFC 3339 time (any number of fraction digits) as Unix seconds."""
    if not stamp:
        return 0
    text = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def _ago(since: int) -> str:
    """Docker's HumanDuration of the time since ``since`` (Unix seconds)."""
    seconds = max(0, int(time.time()) - since)
    if seconds < 1:
        return "Less than a second"
    for unit, size, limit in (("second", 1, 60), ("minute", 60, 3600), ("hour", 3600, 172800),
                              ("day", 86400, 14 * 86400), ("week", 7 * 86400, 60 * 86400),
                              ("month", 30 * 86400, 730 * 86400)):
        if seconds < limit:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}" if count != 1 or unit not in (
                "minute", "hour") else f"About a{'n' if unit == 'hour' else ''} {unit}"
    return f"{seconds // (365 * 86400)} years"


HEALTH_WORDS = {"starting": " (health: starting)", "healthy": " (healthy)",
                "unhealthy": " (unhealthy)"}


def _test(record: ContainerRecord, key: str, value: str) -> bool:
    if key == "id":
        return record.id.startswith(value)
    if key == "name":
        return re.search(value, record.name) is not None
    if key == "status":
        return record.state == value
    if key == "label":
        name, sep, wanted = value.partition("=")
        return name in record.spec.labels and (not sep or record.spec.labels[name] == wanted)
    if key == "ancestor":
        return record.image == value or \
            record.image_id.removeprefix("sha256:").startswith(value.removeprefix("sha256:"))
    if key == "network":
        return record.spec.network_mode == value
    raise InvalidArgument(f"invalid filter '{key}'")


def _matches(record: ContainerRecord, wanted: dict[str, list[str]]) -> bool:
    """Docker's filters: any value of a key matches, every label given must."""
    for key, values in wanted.items():
        join = all if key == "label" else any
        if values and not join(_test(record, key, v) for v in values):
            return False
    return True


FILTERS = ("id", "name", "status", "label", "ancestor", "network")


def _summary(record: ContainerRecord, doc: dict[str, Any]) -> dict[str, Any]:
    """The row of an inspected container, but for ``State`` and ``Status``."""
    ports = []
    for key, bindings in (doc["NetworkSettings"].get("Ports") or {}).items():
        number, _, proto = key.partition("/")
        for binding in bindings or []:
            ports.append({"IP": binding["HostIp"], "PrivatePort": int(number),
                          "PublicPort": int(binding["HostPort"]), "Type": proto})
    command = " ".join([doc["Path"], *doc["Args"]]).strip()
    return {
        "Id": record.id, "Names": [f"/{record.name}"], "Image": record.image,
        "ImageID": record.image_id, "Command": command, "Created": epoch(record.created),
        "Ports": ports, "Labels": dict(record.spec.labels),
        "HostConfig": {"NetworkMode": record.spec.network_mode},
        "NetworkSettings": {"Networks": doc["NetworkSettings"]["Networks"]},
        "Mounts": [{**m, "Mode": "", "Propagation": ""} for m in doc["Mounts"]]}


class _Row:
    """One container's row, as built at its last change."""

    __slots__ = ("raw", "record", "text", "health", "started", "finished", "cgroup")

    def __init__(self, raw: ContainerRecord, record: ContainerRecord,
                 doc: dict[str, Any], cgroup: dict[str, Any] | None) -> None:
        self.raw = raw  # as SQLite had it: a different one there is a change
        self.record = record  # refreshed, "running" when paused (read live: ``state``)
        self.text = json.dumps(_summary(record, doc))[:-1]  # without its closing brace
        self.health: str | None = (doc["State"].get("Health") or {}).get("Status")
        self.started, self.finished = epoch(record.started_at), epoch(record.finished_at)
        self.cgroup = cgroup  # the runtime's record of a running container's cgroups

    def state(self) -> str:
        if self.record.state == "running" and self.cgroup and frozen(self.cgroup):
            return "paused"
        return self.record.state

    def status(self, state: str) -> str:
        """Docker's ``Status`` text."""
        record = self.record
        if state == "restarting":
            return f"Restarting ({record.exit_code}) {_ago(self.finished)} ago"
        if state in ("running", "paused"):
            up = f"Up {_ago(self.started)}"
            return up + " (Paused)" if state == "paused" else \
                up + HEALTH_WORDS.get(self.health or "", "")
        if state == "created":
            return "Created"
        return f"Exited ({record.exit_code}) {_ago(self.finished)} ago"

    def json(self, state: str) -> str:
        return f'{self.text}, "State": "{state}", "Status": {json.dumps(self.status(state))}}}'


class ContainerList:
    """The rows of every container (newest first), each rebuilt when it changes."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._order: list[str] = []
        self._version: tuple[int, int] | None = None
        self._watch: ContainerWatch | None = None
        self._lock = threading.Lock()

    def rows(self, engine: Engine) -> list[_Row]:
        """Every container's row, brought up to date."""
        service = engine.containers
        with self._lock:
            if self._watch is None:
                self._watch = ContainerWatch(service.containers_dir)
            changes = self._watch.changed()  # first: what is read next is at least as new
            version = service.store.db.version()
            stale = set(self._rows) if changes.everything else set(changes.containers)
            if version != self._version:
                raws = service.store.all()
                self._version = version
                for gone in set(self._rows) - {r.id for r in raws}:
                    del self._rows[gone]
                    self._watch.forget(gone)
                stale |= {r.id for r in raws if r.id not in self._rows
                          or self._rows[r.id].raw != r}
                raw_of = {r.id: r for r in raws}
                self._order = [r.id for r in raws]
            else:
                raw_of = {i: row.raw for i, row in self._rows.items()}
            # a supervisor that died unseen: the engine's recovery, as every command does
            stale |= {i for i, row in self._rows.items() if row.record.supervisor_pid
                      and not supervised(row.record)}
            try:
                for container_id in stale & set(raw_of):
                    self._rebuild(engine, raw_of[container_id])
            except BaseException:  # what changed is forgotten: start again from nothing
                self._rows.clear()
                self._version = None
                raise
            return [self._rows[i] for i in self._order if i in self._rows]

    def _rebuild(self, engine: Engine, raw: ContainerRecord) -> None:
        assert self._watch is not None
        self._watch.watch(raw.id)  # before the folder is read: a change from now is seen
        service = engine.containers
        try:
            record = _recovered(service, service.refresh(raw))
            doc = service.inspect_record(record)
        except ContainerNotFound:  # removed meanwhile: left out, as Docker does
            self._rows.pop(raw.id, None)
            return
        if record.state == "paused":
            record = record._replace(state="running")
        self._rows[raw.id] = _Row(raw, record, doc, _cgroup(engine, record))

    def close(self) -> None:
        with self._lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None
            self._rows.clear()
            self._version = None


def _recovered(service: ContainerService, record: ContainerRecord) -> ContainerRecord:
    """``recovered``, but a recovery that failed (the container died as a new supervisor
    came to adopt it) fails no list: the row says what is recorded, and the dead
    supervisor, still seen at the next request, has the recovery tried again."""
    try:
        return service.recovered(record)
    except ContainerNotFound:
        raise
    except DockyardError as exc:
        log.warning("listing %s: %s", record.id[:12], exc)
        return record


def _cgroup(engine: Engine, record: ContainerRecord) -> dict[str, Any] | None:
    if record.state != "running":
        return None
    path = engine.containers.layout.runtime_root / record.id / STATE_FILE
    try:
        cgroup = json.loads(path.read_bytes()).get("cgroup")
    except (OSError, ValueError, AttributeError):
        return None
    return cgroup if isinstance(cgroup, dict) else None


LIST: web.AppKey[ContainerList] = web.AppKey("container-list", ContainerList)


def list_json(engine: Engine, lister: ContainerList, everything: bool,
              wanted: dict[str, list[str]], limit: int | None) -> bytes:
    """The answer to ``GET /containers/json``."""
    unknown = sorted(set(wanted) - set(FILTERS))
    if unknown:  # refused even when no container is there to test
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    everything = everything or "status" in wanted
    texts = []
    for row in lister.rows(engine):
        state = row.state()
        if not everything and state not in ACTIVE_STATES:
            continue
        if wanted and not _matches(row.record._replace(state=state), wanted):
            continue
        texts.append(row.json(state))
        if limit is not None and 0 < limit <= len(texts):
            break
    return f"[{', '.join(texts)}]".encode()


def list_rows(engine: Engine, lister: ContainerList) -> list[dict[str, Any]]:
    """Every container's row, as data (``/system/df``)."""
    rows: list[dict[str, Any]] = json.loads(list_json(engine, lister, True, {}, None))
    return rows


async def list_containers(request: web.Request) -> web.Response:
    everything = params.flag(request, "all")
    limit = params.integer(request, "limit")
    body = await call(request, list_json, request.app[ENGINE], request.app[LIST], everything,
                      params.filters(request), limit)
    return web.Response(body=body, content_type="application/json")
