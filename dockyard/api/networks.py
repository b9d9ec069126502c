"""Network routes: list, inspect, create, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.create import Fields
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument, NotFound

PREDEFINED = ("bridge", "host", "none")


def register(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("POST", "/networks/create", create)
    router.add("GET", "/networks/{id}", inspect)
    router.add("DELETE", "/networks/{id}", delete)
    router.add("POST", "/networks/prune", prune)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)


def _container_names(engine: Engine) -> dict[str, str]:
    return {r.id: r.name for r in engine.containers.list(all_containers=True, recover=False)}


def _inspect(engine: Engine, ref: str) -> dict[str, Any]:
    from dockyard.engine.networks import predefined_inspect

    if ref in ("host", "none"):
        return predefined_inspect(ref)
    record = engine.networks.default() if ref == "bridge" else _find(engine, ref)
    doc = engine.networks.inspect(record, _container_names(engine))
    return {**doc, "Name": ref} if ref == "bridge" else doc


def _find(engine: Engine, ref: str) -> Any:
    try:
        return engine.networks.get(ref)
    except NotFound:
        raise NotFound(f"network {ref} not found") from None


def _all(engine: Engine, wanted: dict[str, list[str]]) -> list[dict[str, Any]]:
    docs = [_inspect(engine, name) for name in PREDEFINED]
    names = _container_names(engine)
    # the default bridge's record is listed once, as "bridge", above
    docs += [engine.networks.inspect(r, names) for r in engine.networks.all()
             if r.name not in PREDEFINED]
    for key in ("name", "id", "driver"):
        if key in wanted:
            field = {"name": "Name", "id": "Id", "driver": "Driver"}[key]
            docs = [d for d in docs if any(str(d[field]).startswith(v) if key == "id" else
                                           v in str(d[field]) for v in wanted[key])]
    return docs


async def list_networks(request: web.Request) -> web.Response:
    return web.json_response(await call(request, _all, request.app[ENGINE],
                                        params.filters(request)))


async def inspect(request: web.Request) -> web.Response:
    return web.json_response(await call(request, _inspect, request.app[ENGINE],
                                        request.match_info["id"]))


async def create(request: web.Request) -> web.Response:
    body = Fields(await params.json_body(request), "network.CreateRequest")
    name = body.text("Name")
    if not name:
        raise InvalidArgument("network name is required")
    configs = body.object("IPAM").objects("Config")
    subnet = configs[0].text("Subnet") if configs else None
    gateway = configs[0].text("Gateway") if configs else None
    engine = request.app[ENGINE]
    record = await call(request, engine.networks.create, name, subnet=subnet,
                        gateway=gateway, internal=body.boolean("Internal"),
                        labels=body.mapping("Labels"), driver=body.text("Driver") or "bridge")
    return web.json_response({"Id": record.id, "Warning": ""}, status=201)


async def delete(request: web.Request) -> web.Response:
    await call(request, request.app[ENGINE].networks.remove, request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    """A running container is wired in by a helper process (``api.helper``): the
    server never forks into a container's namespaces."""
    from dockyard.api import helper

    body = Fields(await params.json_body(request), "network.ConnectOptions")
    container = body.text("Container")
    if not container:
        raise InvalidArgument("container is required")
    endpoint = body.object("EndpointConfig")
    ip = endpoint.object("IPAMConfig").text("IPv4Address") or None
    engine = request.app[ENGINE]
    network = await call(request, _find, engine, request.match_info["id"])
    record = await call(request, engine.containers.get, container)
    await helper.run(engine.layout.root, {
        "op": "connect", "network": network.name, "container": record.id,
        "aliases": list(endpoint.strings("Aliases")), "ip": ip})
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    from dockyard.engine.container_network import disconnect as engine_disconnect

    body = Fields(await params.json_body(request), "network.DisconnectOptions")
    container = body.text("Container")
    if not container:
        raise InvalidArgument("container is required")
    body.boolean("Force")
    engine = request.app[ENGINE]
    network = await call(request, _find, engine, request.match_info["id"])
    record = await call(request, engine.containers.get, container)
    await call(request, engine_disconnect, engine.containers, record, network.name)
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    unknown = sorted(set(params.filters(request)))
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    removed = await call(request, request.app[ENGINE].networks.prune)
    return web.json_response({"NetworksDeleted": [n for n in removed if n != "bridge"]
                              or None})
