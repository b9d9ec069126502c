"""Image routes: list, inspect, history, tag, delete, create (pull or import), load, get."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import IO, Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.container_list import epoch
from dockyard.api.server import ENGINE, Router, _common_headers
from dockyard.api.streams import body_file, call, response_file
from dockyard.engine.engine import Engine
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.registry.auth import Credentials


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/create", create)
    router.add("POST", "/images/load", load)
    router.add("GET", "/images/get", get_many)
    router.add("POST", "/images/prune", prune)
    router.add("GET", "/images/search", search)
    router.add("POST", "/build/prune", build_prune)
    router.add("GET", "/images/{name:.+}/json", inspect)
    router.add("GET", "/images/{name:.+}/history", history)
    router.add("GET", "/images/{name:.+}/get", get_one)
    router.add("POST", "/images/{name:.+}/tag", tag)
    router.add("DELETE", "/images/{name:.+}", delete)


def _summaries(engine: Engine, wanted: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for record in engine.images.index.images():
        doc = engine.images.inspect(record.manifest_digest)
        labels = (doc.get("Config") or {}).get("Labels") or {}
        if "dangling" in wanted and (wanted["dangling"] == ["true"]) == bool(doc["RepoTags"]):
            continue
        if "label" in wanted and not all(
                k in labels and (not sep or labels[k] == v)
                for k, sep, v in (item.partition("=") for item in wanted["label"])):
            continue
        if "reference" in wanted and not any(
                t == r or t.split(":")[0] == r for t in doc["RepoTags"]
                for r in wanted["reference"]):
            continue
        rows.append({"Id": doc["Id"], "ParentId": "", "RepoTags": doc["RepoTags"],
                     "RepoDigests": doc["RepoDigests"], "Created": epoch(doc["Created"]),
                     "Size": doc["Size"], "SharedSize": -1, "VirtualSize": doc["Size"],
                     "Labels": labels, "Containers": -1})
    return rows


async def list_images(request: web.Request) -> web.Response:
    return web.json_response(await call(request, _summaries, request.app[ENGINE],
                                        params.filters(request)))


async def inspect(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response(await call(request, engine.images.inspect,
                                        request.match_info["name"]))


async def history(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    rows = await call(request, engine.images.history, request.match_info["name"])
    return web.json_response([{**row, "Created": epoch(row["Created"]), "Tags": None}
                              for row in rows])


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo") or ""
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    target = f"{repo}:{request.query['tag']}" if request.query.get("tag") else repo
    await call(request, request.app[ENGINE].images.tag, request.match_info["name"], target)
    return web.Response(status=201)


async def delete(request: web.Request) -> web.Response:
    events = await call(request, request.app[ENGINE].images.remove,
                        request.match_info["name"], force=params.flag(request, "force"))
    return web.json_response([{key: value} for key, _, value in
                              (event.partition(": ") for event in events)])


# --- streamed transfers ------------------------------------------------------------------
class JsonStream:
    """Docker's JSON-lines progress, written from a worker thread; the headers go out
    with the first line, so an error before any progress is still a plain 4xx/5xx."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.response = web.StreamResponse(headers={"Content-Type": "application/json"})
        _common_headers(self.response)
        self.lock = threading.Lock()

    async def _send(self, doc: dict[str, Any]) -> None:
        if not self.response.prepared:
            await self.response.prepare(self.request)
        await self.response.write(json.dumps(doc).encode() + b"\r\n")

    def send(self, doc: dict[str, Any]) -> None:
        with self.lock:
            asyncio.run_coroutine_threadsafe(self._send(doc), self.loop).result()

    # registry.transfer.Progress
    def start(self, key: str, total: int, what: str) -> None:
        self.send({"status": what or "Downloading", "id": key,
                   "progressDetail": {"current": 0, "total": total}})

    def advance(self, key: str, amount: int) -> None:
        pass  # per-chunk lines would flood the stream; done() says when a layer is in

    def done(self, key: str, status: str) -> None:
        self.send({"status": status, "progressDetail": {}, "id": key})

    async def finish(self, error: DockyardError | None) -> web.StreamResponse:
        if error is not None and not self.response.prepared:
            raise error
        if error is not None:
            await self._send({"errorDetail": {"message": error.message},
                              "error": error.message})
        await self.response.write_eof()
        return self.response


def _reference(request: web.Request) -> str:
    image = request.query.get("fromImage") or ""
    tag_ = request.query.get("tag") or ""
    if not image:
        raise InvalidArgument("fromImage or fromSrc is required")
    last = image.rsplit("/", 1)[-1]
    if tag_ and "@" not in image and ":" not in last:
        image += f"@{tag_}" if tag_.startswith("sha256:") else f":{tag_}"
    return image


def _pull(engine: Engine, ref: str, stream: JsonStream, creds: Credentials | None) -> None:
    from dockyard.oci import reference

    parsed = reference.parse(ref)
    stream.send({"status": f"Pulling from {parsed.repository}", "id": parsed.tag or "latest"})
    digest = engine.pull_image(ref, progress=stream, credentials=creds)
    stream.send({"status": f"Digest: {digest}"})
    stream.send({"status": f"Status: Downloaded newer image for {parsed}"})


def _import(engine: Engine, body: IO[bytes], ref: str | None, stream: JsonStream) -> None:
    image_id = engine.images.import_rootfs(body, ref)
    stream.send({"status": image_id})


async def create(request: web.Request) -> web.StreamResponse:
    """``fromImage`` (+``tag``): pull; ``fromSrc=-`` (+``repo``, ``tag``): import the body."""
    engine = request.app[ENGINE]
    stream = JsonStream(request, asyncio.get_running_loop())
    source = request.query.get("fromSrc")
    error: DockyardError | None = None
    try:
        if source is not None:
            if source != "-":
                raise InvalidArgument("fromSrc: only - (the request body) is supported")
            repo = request.query.get("repo") or ""
            ref = (f"{repo}:{request.query['tag']}" if request.query.get("tag") else repo) \
                or None
            await call(request, _import, engine, body_file(request), ref, stream)
        else:
            from dockyard.api.registry import credentials

            await call(request, _pull, engine, _reference(request), stream,
                       credentials(request))
    except DockyardError as exc:
        error = exc
    return await stream.finish(error)


async def load(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    stream = JsonStream(request, asyncio.get_running_loop())
    names = await call(request, engine.images.load, body_file(request))
    from dockyard.oci import reference

    for name in names:
        if name.startswith("sha256:"):
            line = f"Loaded image ID: {name}"
        else:
            ref = reference.parse(name)
            line = f"Loaded image: {ref.familiar}" + (f":{ref.tag}" if ref.tag else "")
        await stream._send({"stream": line + "\n"})
    return await stream.finish(None)


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    engine = request.app[ENGINE]
    if not names:
        raise InvalidArgument("no image names given")
    for name in names:  # a 404 before the first byte
        await call(request, engine.images.get, name)
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    _common_headers(response)
    await response.prepare(request)
    out = response_file(response)
    await call(request, engine.images.save, names, out)
    await call(request, out.flush)
    await response.write_eof()
    return response


async def get_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def get_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


async def search(request: web.Request) -> web.Response:
    """No index to search here (no Docker Hub): an empty answer, as the Engine API
    allows, once the term is checked."""
    if not request.query.get("term"):
        raise InvalidArgument("term is required")
    params.filters(request)
    return web.json_response([])


async def prune(request: web.Request) -> web.Response:
    """Dangling images (``dangling=false``: every unused one), as ``image prune``."""
    wanted = params.filters(request)
    unknown = sorted(set(wanted) - {"dangling"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    dangling = wanted.get("dangling", ["true"])[-1].lower() in ("true", "1")
    deleted, freed = await call(request, request.app[ENGINE].images.prune,
                                all_images=not dangling)
    return web.json_response({"ImagesDeleted": [{"Deleted": d} for d in deleted] or None,
                              "SpaceReclaimed": freed})


async def build_prune(request: web.Request) -> web.Response:
    from dockyard.build.cache import BuildCache

    engine = request.app[ENGINE]
    removed = await call(request, lambda: BuildCache(engine.db).prune())
    return web.json_response({"CachesDeleted": [f"entry-{n}" for n in range(removed)] or None,
                              "SpaceReclaimed": 0})
