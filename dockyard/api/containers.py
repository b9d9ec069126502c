"""Container routes: create, inspect, start, stop, restart, kill, wait, delete.

The list is in ``container_list``; logs and attach (the streams) in
``container_streams``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web

from dockyard.api import params
from dockyard.api.container_streams import ATTACHMENTS, attach, logs
from dockyard.api.create import spec_from_body
from dockyard.api.errors import NotModified
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.engine.container_watch import ContainerWatch
from dockyard.engine.engine import Engine
from dockyard.engine.records import ACTIVE_STATES, ContainerRecord
from dockyard.errors import ContainerNotFound, InvalidArgument


def register(router: Router) -> None:
    ATTACHMENTS.setup(router.app)
    router.add("POST", "/containers/create", create)
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
    with _woken_by_changes(engine, first.id) as changed:
        code = first.exit_code
        while True:  # (looked at again once watched: a change before is not missed)
            try:
                now = await call(request, engine.containers.get, first.id)
                code = now.exit_code
            except ContainerNotFound:  # gone (removed, or --rm): the code its attach brought
                code = await ATTACHMENTS.exit_code(request.app, first.id, code)
                break
            if _done(condition, first, now):
                break
            await changed()
    await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await response.write_eof()
    return response


@contextlib.contextmanager
def _woken_by_changes(engine: Engine, container_id: str
                      ) -> Iterator[Callable[[], Awaitable[None]]]:
    """An awaitable that returns once the container's folder changed (its supervisor
    rewrote ``status.json``: an exit; the folder went: a removal), read from an inotify
    watch on the event loop — not a poll of the engine every few milliseconds beside
    the container's own start (a second at most, or 20 ms when it cannot be watched)."""
    watch = ContainerWatch(engine.containers.containers_dir)
    watched = watch.watch(container_id)
    every = 1.0 if watched else 0.02
    woke = asyncio.Event()
    loop = asyncio.get_running_loop()
    if watched:
        loop.add_reader(watch.fileno(), woke.set)

    async def changed() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woke.wait(), every)
        woke.clear()
        watch.changed()  # read empty first: what is read next is at least as new

    try:
        yield changed
    finally:
        if watched:
            loop.remove_reader(watch.fileno())
        watch.close()
