"""Container routes: create, list, inspect, start, stop, restart, kill, wait, delete.

Logs and attach (the streams) are in ``container_streams``."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import threading
import time
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.container_streams import ATTACHMENTS, attach, logs
from dockyard.api.create import spec_from_body
from dockyard.api.errors import NotModified
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.engine.engine import Engine
from dockyard.engine.records import ACTIVE_STATES, ContainerRecord
from dockyard.errors import ContainerNotFound, InvalidArgument


def register(router: Router) -> None:
    ATTACHMENTS.setup(router.app)
    router.app[SUMMARIES] = SummaryCache()
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("DELETE", "/containers/{id}", delete)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("POST", "/containers/{id}/attach", attach)


def _engine(request: web.Request) -> Engine:
    return request.app[ENGINE]


async def create(request: web.Request) -> web.Response:
    spec = spec_from_body(await params.json_body(request), request.query.get("name"))
    record = await call(request, _engine(request).containers.create, spec)
    return web.json_response({"Id": record.id, "Warnings": []}, status=201)


# --- list --------------------------------------------------------------------------
def epoch(stamp: str) -> int:
    """An RFC 3339 time (any number of fraction digits) as Unix seconds."""
    if not stamp:
        return 0
    text = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def _ago(stamp: str) -> str:
    """Docker's HumanDuration."""
    seconds = max(0, int(time.time()) - epoch(stamp))
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


def _status(record: ContainerRecord, health: str | None = None) -> str:
    if record.state == "restarting":
        return f"Restarting ({record.exit_code}) {_ago(record.finished_at)} ago"
    if record.state in ("running", "paused"):
        up = f"Up {_ago(record.started_at)}"
        if record.state == "paused":
            return up + " (Paused)"
        return up + HEALTH_WORDS.get(health or "", "")
    if record.state == "created":
        return "Created"
    return f"Exited ({record.exit_code}) {_ago(record.finished_at)} ago"


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


class SummaryCache:
    """The list rows of containers, kept while nothing they are made of changed: the
    record's state fields, and the bundle's network.json and status.json (ports,
    networks, health: each rewritten by rename, so a change is a new mtime).  A
    ``docker ps`` of many containers then costs a stat per container, not an inspect."""

    LIMIT = 4096

    def __init__(self) -> None:
        # id -> (stamp, row without Status, health, the row's JSON without its last brace)
        self._rows: dict[str, tuple[tuple[Any, ...], dict[str, Any], str | None, str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def stamp(engine: Engine, record: ContainerRecord) -> tuple[Any, ...]:
        bundle = os.path.join(engine.containers.containers_dir, record.id)
        times = []
        for name in ("network.json", "status.json"):
            try:
                times.append(os.stat(os.path.join(bundle, name)).st_mtime_ns)
            except OSError:
                times.append(0)
        return (record.name, record.state, record.started_at, record.finished_at,
                record.exit_code, record.restart_count, record.pid, record.image_id, *times)

    def _entry(self, engine: Engine, record: ContainerRecord
               ) -> tuple[tuple[Any, ...], dict[str, Any], str | None, str]:
        stamp = self.stamp(engine, record)
        with self._lock:
            cached = self._rows.get(record.id)
        if cached is None or cached[0] != stamp:
            doc = engine.containers.inspect(record.id)
            row = _summary(record, doc)
            cached = (stamp, row, (doc["State"].get("Health") or {}).get("Status"),
                      json.dumps(row)[:-1])
            with self._lock:
                if len(self._rows) >= self.LIMIT:  # rows of removed containers, when
                    self._rows.clear()  # no list of all of them prunes them
                self._rows[record.id] = cached
        return cached

    def row(self, engine: Engine, record: ContainerRecord) -> dict[str, Any]:
        _stamp, row, health, _text = self._entry(engine, record)
        return {**row, "Status": _status(record, health)}

    def row_json(self, engine: Engine, record: ContainerRecord) -> str:
        """The row as JSON, Status added to the kept text (the one field that changes
        with the clock)."""
        _stamp, _row, health, text = self._entry(engine, record)
        return f'{text}, "Status": {json.dumps(_status(record, health))}}}'

    def keep_only(self, ids: set[str]) -> None:
        with self._lock:
            for gone in set(self._rows) - ids:
                del self._rows[gone]


SUMMARIES: web.AppKey[SummaryCache] = web.AppKey("summaries", SummaryCache)


def _summary(record: ContainerRecord, doc: dict[str, Any]) -> dict[str, Any]:
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
        "Ports": ports, "Labels": dict(record.spec.labels), "State": record.state,
        "HostConfig": {"NetworkMode": record.spec.network_mode},
        "NetworkSettings": {"Networks": doc["NetworkSettings"]["Networks"]},
        "Mounts": [{**m, "Mode": "", "Propagation": ""} for m in doc["Mounts"]]}


def _records(engine: Engine, everything: bool, wanted: dict[str, list[str]],
             limit: int | None, cache: SummaryCache) -> list[ContainerRecord]:
    unknown = sorted(set(wanted) - set(FILTERS))
    if unknown:  # refused even when no container is there to test
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    records = engine.containers.list(all_containers=everything or "status" in wanted)
    if everything:
        cache.keep_only({r.id for r in records})
    records = [r for r in records if _matches(r, wanted)]
    records.sort(key=lambda r: r.created, reverse=True)
    if limit is not None and limit > 0:
        records = records[:limit]
    return records


def _list(engine: Engine, everything: bool, wanted: dict[str, list[str]],
          limit: int | None, cache: SummaryCache | None = None) -> list[dict[str, Any]]:
    cache = cache or SummaryCache()
    rows = []
    for record in _records(engine, everything, wanted, limit, cache):
        try:
            rows.append(cache.row(engine, record))
        except ContainerNotFound:
            continue  # removed while we list: left out, as Docker does
    return rows


def _list_json(engine: Engine, everything: bool, wanted: dict[str, list[str]],
               limit: int | None, cache: SummaryCache) -> bytes:
    """``_list`` as the response body, from the rows' kept JSON."""
    texts = []
    for record in _records(engine, everything, wanted, limit, cache):
        try:
            texts.append(cache.row_json(engine, record))
        except ContainerNotFound:
            continue
    return f"[{', '.join(texts)}]".encode()


async def list_containers(request: web.Request) -> web.Response:
    everything = params.flag(request, "all")
    limit = params.integer(request, "limit")
    body = await call(request, _list_json, _engine(request), everything,
                      params.filters(request), limit, request.app[SUMMARIES])
    return web.Response(body=body, content_type="application/json")


async def inspect(request: web.Request) -> web.Response:
    doc = await call(request, _engine(request).containers.inspect, request.match_info["id"])
    return web.json_response(doc)


# --- lifecycle -------------------------------------------------------------------------
async def start(request: web.Request) -> web.Response:
    engine = _engine(request)
    record = await call(request, engine.containers.get, request.match_info["id"])
    if record.state in ACTIVE_STATES:
        raise NotModified()
    waiting = ATTACHMENTS.take(request.app, record.id)
    if not waiting:
        await call(request, engine.containers.start, record.id)
        return web.Response(status=204)
    try:
        await call(request, engine.containers.start, record.id, attach=True)
    except BaseException as exc:
        for future in waiting:
            if not future.done():
                future.set_exception(exc)
        raise
    await ATTACHMENTS.connect(request, record.id, waiting)
    return web.Response(status=204)


def _timeout(request: web.Request) -> int | None:
    return params.integer(request, "t") if "t" in request.query else \
        params.integer(request, "timeout")


async def stop(request: web.Request) -> web.Response:
    engine = _engine(request)
    record = await call(request, engine.containers.get, request.match_info["id"])
    if record.state not in ACTIVE_STATES:
        raise NotModified()
    await call(request, engine.containers.stop, record.id, _timeout(request))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    engine = _engine(request)
    record = await call(request, engine.containers.get, request.match_info["id"])
    await call(request, engine.containers.stop, record.id, _timeout(request))
    await call(request, engine.containers.start, record.id)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    from dockyard.runtime.operations import parse_signal

    number = parse_signal(request.query.get("signal") or "SIGKILL")
    await call(request, _engine(request).containers.kill, request.match_info["id"], number)
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    await call(request, _engine(request).containers.remove, request.match_info["id"],
               force=params.flag(request, "force"), volumes=params.flag(request, "v"))
    return web.Response(status=204)


# --- wait ----------------------------------------------------------------------------
CONDITIONS = ("not-running", "next-exit", "removed")


def _done(condition: str, first: ContainerRecord, now: ContainerRecord) -> bool:
    stopped = now.state not in ACTIVE_STATES
    if condition == "not-running":
        return stopped
    if condition == "next-exit":  # an exit after we began to wait
        return stopped and now.state != "created" and now.finished_at != first.finished_at
    return False  # removed: only once it is gone


async def wait(request: web.Request) -> web.StreamResponse:
    """Headers at once (the docker CLI waits for them before it starts the container),
    the status once the condition holds."""
    engine = _engine(request)
    condition = request.query.get("condition") or "not-running"
    if condition not in CONDITIONS:
        raise InvalidArgument(f"invalid condition: {condition!r} (want {', '.join(CONDITIONS)})")
    first = await call(request, engine.containers.get, request.match_info["id"])
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    now: ContainerRecord | None = first
    code = first.exit_code
    while now is not None and not _done(condition, first, now):
        await asyncio.sleep(0.02)
        try:
            now = await call(request, engine.containers.get, first.id)
            code = now.exit_code
        except ContainerNotFound:  # gone (removed, or --rm): the code its attach brought
            code = await ATTACHMENTS.exit_code(request.app, first.id, code)
            break
    await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await response.write_eof()
    return response
