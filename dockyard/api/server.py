"""The aiohttp application for one ``Engine``, served on the listeners of
``api.listeners`` (unix sockets, loopback TCP, TCP with mutual TLS, systemd's).

Every route answers on its plain path and under ``/vX.Y``; a version outside
``MIN_API_VERSION``..``API_VERSION`` is refused with Docker's words.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from dockyard import __version__
from dockyard.api.errors import Handler, error_response, errors_middleware
from dockyard.api.listeners import Tls, open_sites, parse_host
from dockyard.api.streams import EXECUTOR
from dockyard.engine.engine import Engine

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
DEFAULT_HOST = "unix:///run/dockyard/docker.sock"

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)

log = logging.getLogger("dockyard.api")


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class Router:
    """Adds each route at its path and under the ``/vX.Y`` prefix."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)
        self.app.router.add_route(method, r"/v{version:\d+\.\d+}" + path, handler)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    wanted = request.match_info.get("version")
    if wanted:
        if _version(wanted) < _version(MIN_API_VERSION):
            return error_response(400, f"client version {wanted} is too old. Minimum "
                                       f"supported API version is {MIN_API_VERSION}, please "
                                       "upgrade your client to a newer version")
        if _version(wanted) > _version(API_VERSION):
            return error_response(400, f"client version {wanted} is too new. Maximum "
                                       f"supported API version is {API_VERSION}")
    response = await handler(request)
    if not response.prepared:
        _common_headers(response)
    return response


def _common_headers(response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Docker/{engine_version()} (linux)"


def engine_version() -> str:
    """The engine's version (``dockyard.__version__``)."""
    return __version__


class _JsonErrors(RequestHandler):
    """aiohttp's connection handler, answering what never reaches a route (a request
    line or header it cannot parse, headers too large) with Docker's JSON error body
    instead of aiohttp's text page."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            super().handle_error(request, status, exc, message)  # logs the traceback
        elif request.writer.output_size > 0:
            raise ConnectionError("an answer was under way: cannot send an error")
        if isinstance(exc, HttpProcessingError) and exc.message:
            message = exc.message
        words = " ".join(w.strip() for w in (message or "").splitlines() if w.strip())[:300]
        words = words or ("internal error" if status >= 500 else "bad request")
        if status < 500:
            log.info("refused a request: %s", words)
        response = error_response(status, words)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


def make_app(engine: Engine, *, workers: int = 16) -> web.Application:
    # request bodies that are read whole (JSON) stay small; image and archive bodies
    # are streamed, never read whole
    app = web.Application(middlewares=[errors_middleware, version_middleware],
                          client_max_size=4 * 1024 * 1024)
    app[ENGINE] = engine
    executor = concurrent.futures.ThreadPoolExecutor(workers, "dockyard-api")
    app[EXECUTOR] = executor

    async def shutdown(_app: web.Application) -> None:
        executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    router = Router(app)
    from dockyard.api import (
        build,
        container_files,
        container_list,
        container_ops,
        containers,
        events,
        exec,
        images,
        networks,
        registry,
        system,
        volumes,
    )

    for module in (system, container_list, containers, container_files, container_ops, events, exec,
                   images, build, registry, networks, volumes):
        module.register(router)
    return app


async def serve(engine: Engine, hosts: list[str],
                ready: Callable[[list[str]], None] | None = None,
                tls: Tls | None = None) -> None:
    """Listen on ``hosts`` until SIGTERM or SIGINT (rules: ``api.listeners``)."""
    listeners = [parse_host(h, tls) for h in hosts or [DEFAULT_HOST]]
    # built here, in one thread, before any request: the services' lazy properties
    _ = engine.containers, engine.images, engine.networks, engine.volumes
    runner = web.AppRunner(make_app(engine), handler_cancellation=True, access_log=None)
    await runner.setup()
    assert runner.server is not None
    runner.server.__class__ = _Server  # connections get _JsonErrors (no other hook)
    paths: list[str] = []
    try:
        paths = await open_sites(runner, listeners, tls)
        if ready is not None:
            ready([str(a) for a in runner.addresses])
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
    finally:
        await runner.cleanup()
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
