"""More container routes: top, stats, pause, unpause, rename, update, prune; and
``/system/df``.  Each is a thin call of ``engine.container_ops`` (the same code as the
``dockyard`` command of that name), answered in Docker's shapes and words."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shlex
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.create import Fields
from dockyard.api.server import ENGINE, Router, _common_headers
from dockyard.api.streams import call
from dockyard.engine.engine import Engine
from dockyard.engine.events import parse_time
from dockyard.engine.records import ContainerRecord
from dockyard.errors import Conflict, ContainerNotFound, InvalidArgument

_SAMPLE_GAP = 0.5  # seconds between the two samples of a one-time stats answer


def register(router: Router) -> None:
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/{id}/update", update)
    router.add("POST", "/containers/prune", prune)


def _engine(request: web.Request) -> Engine:
    return request.app[ENGINE]


async def top(request: web.Request) -> web.Response:
    try:
        ps_args = tuple(shlex.split(request.query.get("ps_args", "")))
    except ValueError as exc:
        raise InvalidArgument(f"invalid ps_args: {exc}") from None
    titles, rows = await call(request, _engine(request).container_ops.top,
                              request.match_info["id"], ps_args)
    if not titles:
        raise InvalidArgument(f"ps {' '.join(ps_args)} printed nothing")
    return web.json_response({"Titles": titles, "Processes": rows})


# --- pause, unpause, rename, update --------------------------------------------------
def _resize(engine: Engine, ref: str, rows: int, columns: int) -> None:
    """The container's terminal size, set by its supervisor (``resize`` on the attach
    socket; a container without a TTY ignores it, as Docker's does)."""
    from dockyard.engine.attach_socket import connect

    record = engine.containers.get(ref)
    if record.state not in ("running", "paused"):
        raise Conflict(f"Container {record.id} is not running")
    try:
        connect(engine.containers.bundle(record.id), f"resize {rows} {columns}").close()
    except OSError as exc:
        raise Conflict(f"cannot resize container {record.id[:12]}: {exc.strerror}") from None


async def resize(request: web.Request) -> web.Response:
    sizes = []
    for name in ("h", "w"):
        value = params.integer(request, name)
        if value is None or not 0 < value < 65536:
            raise InvalidArgument(f"{name}: want a terminal size between 1 and 65535")
        sizes.append(value)
    await call(request, _resize, _engine(request), request.match_info["id"], *sizes)
    return web.Response(status=200)


async def pause(request: web.Request) -> web.Response:
    engine = _engine(request)
    record = await call(request, engine.containers.get, request.match_info["id"])
    if record.state == "paused" or (record.state == "running" and await call(
            request, engine.container_ops.is_paused, record)):
        raise Conflict(f"Container {record.id} is already paused")
    await call(request, engine.container_ops.pause, record.id)
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    engine = _engine(request)
    record = await call(request, engine.containers.get, request.match_info["id"])
    if record.state != "paused" and not await call(request, engine.container_ops.is_paused,
                                                   record):
        raise Conflict(f"Container {record.id} is not paused")
    await call(request, engine.container_ops.unpause, record.id)
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    engine = _engine(request)
    name = request.query.get("name", "")
    if not name:
        raise InvalidArgument("Neither old nor new names may be empty")
    record = await call(request, engine.containers.get, request.match_info["id"])
    if name.lstrip("/") == record.name:
        raise InvalidArgument("Renaming a container with the same name as its current name")
    await call(request, engine.container_ops.rename, record.id, name)
    return web.Response(status=204)


def _positive(fields: Fields, key: str) -> int | None:
    """Docker sends every resource field; 0 (or null) leaves it as it is."""
    value = fields.integer(key)
    if value is not None and value < 0 and key != "PidsLimit":
        raise InvalidArgument(f"invalid {key}: {value} (must not be negative)")
    return value or None


async def update(request: web.Request) -> web.Response:
    fields = Fields(await params.json_body(request), "container.UpdateConfig")
    restart = fields.object("RestartPolicy")
    if restart.text("Name"):
        raise InvalidArgument("updating the restart policy is not supported yet")
    for key in ("BlkioWeight", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
                "KernelMemory", "MemorySwap", "CpuRealtimePeriod"):
        if fields.data.get(key) not in (None, 0, ""):
            raise InvalidArgument(f"updating {key} is not supported yet (Memory, "
                                  "MemoryReservation, NanoCpus, CpuShares and PidsLimit are)")
    await call(request, _engine(request).container_ops.update, request.match_info["id"],
               memory=_positive(fields, "Memory"), pids_limit=_positive(fields, "PidsLimit"),
               nano_cpus=_positive(fields, "NanoCpus"),
               cpu_shares=_positive(fields, "CpuShares"),
               memory_reservation=_positive(fields, "MemoryReservation"))
    return web.json_response({"Warnings": []})


# --- prune -----------------------------------------------------------------------------
def _prune(engine: Engine, labels: list[str], until: list[str]) -> list[str]:
    from dockyard.api.container_list import epoch

    if not labels and not until:
        return engine.container_ops.prune()
    limit = min((parse_time(u) for u in until), default=None)
    removed = []
    for record in engine.containers.list(all_containers=True):
        if record.state not in ("exited", "created", "dead"):
            continue
        if not all(_has_label(record, label) for label in labels):
            continue
        if limit is not None and epoch(record.created) >= limit:
            continue
        try:
            engine.containers.remove(record.id)
        except ContainerNotFound:
            continue
        removed.append(record.id)
    return removed


def _has_label(record: ContainerRecord, wanted: str) -> bool:
    negate = wanted.startswith("!")  # label!=k=v arrives as its own filter key
    name, sep, value = wanted.lstrip("!").partition("=")
    found = name in record.spec.labels and (not sep or record.spec.labels[name] == value)
    return found != negate


async def prune(request: web.Request) -> web.Response:
    wanted = params.filters(request)
    unknown = sorted(set(wanted) - {"label", "label!", "until"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    labels = wanted.get("label", []) + ["!" + v for v in wanted.get("label!", [])]
    removed = await call(request, _prune, _engine(request), labels, wanted.get("until", []))
    return web.json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


# --- stats ------------------------------------------------------------------------------
def _system_cpu_ns() -> int:
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:8]
    return sum(int(f) for f in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _networks(pid: int) -> dict[str, dict[str, int]]:
    try:
        with open(f"/proc/{pid}/net/dev") as handle:
            lines = handle.readlines()[2:]
    except OSError:
        return {}
    result = {}
    for line in lines:
        name, _, rest = line.partition(":")
        values = [int(v) for v in rest.split()]
        if name.strip() == "lo" or len(values) < 16:
            continue
        result[name.strip()] = {
            "rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
            "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
            "tx_errors": values[10], "tx_dropped": values[11]}
    return result


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


_ZERO_TIME = "0001-01-01T00:00:00Z"


def _cpu(total: int, system: int) -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": total, "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0},
            "system_cpu_usage": system, "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _sample(engine: Engine, ref: str) -> dict[str, Any]:
    """One stats document (Docker's shape; zeros for a container that is not running)."""
    record = engine.containers.get(ref)
    doc: dict[str, Any] = {
        "id": record.id, "name": f"/{record.name}", "read": _ZERO_TIME,
        "preread": _ZERO_TIME, "num_procs": 0, "storage_stats": {},
        "pids_stats": {}, "blkio_stats": {k: None for k in (
            "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
            "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
            "io_time_recursive", "sectors_recursive")},
        "cpu_stats": _cpu(0, 0), "precpu_stats": _cpu(0, 0), "memory_stats": {}}
    if record.state not in ("running", "paused"):
        return doc
    try:
        found = engine.container_ops.stats(record.id)
    except Conflict:  # stopped meanwhile
        return doc
    doc["read"] = _now()
    doc["pids_stats"] = {"current": found["pids"]}
    doc["cpu_stats"] = _cpu(found["cpu_ns"], _system_cpu_ns())
    doc["memory_stats"] = {"usage": found["memory_usage"], "limit": found["memory_limit"],
                           "stats": {}}
    networks = _networks(record.pid) if record.pid else {}
    if networks:
        doc["networks"] = networks
    return doc


def _with_previous(doc: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    if previous is not None and previous["read"] != _ZERO_TIME:
        doc["precpu_stats"], doc["preread"] = previous["cpu_stats"], previous["read"]
    return doc


async def stats(request: web.Request) -> web.StreamResponse:
    """``stream=false``: one document (two samples apart, so CPU % can be computed,
    unless ``one-shot``); else a document a second until the client goes."""
    engine, ref = _engine(request), request.match_info["id"]
    stream, one_shot = params.flag(request, "stream", True), params.flag(request, "one-shot")
    if one_shot and stream:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    first = await call(request, _sample, engine, ref)
    if not stream:
        if one_shot or first["read"] == _ZERO_TIME:
            return web.json_response(first)
        await asyncio.sleep(_SAMPLE_GAP)
        return web.json_response(_with_previous(await call(request, _sample, engine, ref),
                                                first))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    _common_headers(response)
    await response.prepare(request)
    previous = None
    doc = first
    while True:
        await response.write(json.dumps(_with_previous(doc, previous)).encode() + b"\n")
        previous = doc
        await asyncio.sleep(1)
        try:
            doc = await call(request, _sample, engine, ref)
        except ContainerNotFound:
            break
    await response.write_eof()
    return response
