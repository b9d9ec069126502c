"""Volume routes: list, inspect, create, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.create import Fields
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument


def register(router: Router) -> None:
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/create", create)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", delete)


def _all(engine: Engine, wanted: dict[str, list[str]]) -> dict[str, Any]:
    docs = []
    for volume in engine.volumes.all():
        if "name" in wanted and not any(v in volume.name for v in wanted["name"]):
            continue
        if "dangling" in wanted:
            unused = not engine.containers.volume_users(volume.name)
            if unused != (wanted["dangling"][:1] in (["true"], ["1"])):
                continue
        docs.append(engine.volumes.inspect(volume))
    return {"Volumes": docs, "Warnings": None}


async def list_volumes(request: web.Request) -> web.Response:
    return web.json_response(await call(request, _all, request.app[ENGINE],
                                        params.filters(request)))


async def inspect(request: web.Request) -> web.Response:
    volumes = request.app[ENGINE].volumes
    volume = await call(request, volumes.get, request.match_info["name"])
    return web.json_response(volumes.inspect(volume))


async def create(request: web.Request) -> web.Response:
    body = Fields(await params.json_body(request), "volume.CreateOptions")
    if (body.text("Driver") or "local") != "local":
        from dockyard.errors import InvalidArgument

        raise InvalidArgument(f"volume driver {body.text('Driver')!r} is not supported (local)")
    volumes = request.app[ENGINE].volumes
    volume = await call(request, volumes.create, body.text("Name") or None,
                        options=body.mapping("DriverOpts"), labels=body.mapping("Labels"))
    return web.json_response(volumes.inspect(volume), status=201)


def _remove(engine: Engine, name: str) -> None:
    engine.volumes.get(name)
    users = engine.containers.volume_users(name)
    if not users:
        engine.containers.unmount_volume(name)
    engine.volumes.remove(name, users)


async def delete(request: web.Request) -> web.Response:
    await call(request, _remove, request.app[ENGINE], request.match_info["name"])
    return web.Response(status=204)


def _prune(engine: Engine, everything: bool) -> list[str]:
    removed = []
    for volume in engine.volumes.all():
        if (volume.anonymous or everything) and not engine.containers.volume_users(volume.name):
            engine.containers.unmount_volume(volume.name)
            engine.volumes.remove(volume.name, [])
            removed.append(volume.name)
    return removed


async def prune(request: web.Request) -> web.Response:
    """Unused anonymous volumes (``all=true``: named ones too), as API 1.42+."""
    wanted = params.filters(request)
    unknown = sorted(set(wanted) - {"all"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    everything = wanted.get("all", ["false"])[-1].lower() in ("true", "1")
    removed = await call(request, _prune, request.app[ENGINE], everything)
    return web.json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": 0})
