"""The aiohttp application for one ``Engine`` and the listeners ``dockyard serve``
opens: unix sockets (mode 0660, group ``dockyard`` when there is one) and TCP on
loopback only (a non-loopback address needs mutual TLS, which is not there yet).

Every route answers on its plain path and under ``/vX.Y``; a version outside
``MIN_API_VERSION``..``API_VERSION`` is refused with Docker's words.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import grp
import ipaddress
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from dockyard.api.errors import Handler, error_response, errors_middleware
from dockyard.api.streams import EXECUTOR
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument

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
    from importlib import metadata

    try:
        return metadata.version("dockyard")
    except metadata.PackageNotFoundError:
        return "0.0.0"


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

    for module in (system, containers, container_files, container_ops, events, exec,
                   images, build, registry, networks, volumes):
        module.register(router)
    return app


class Listener(NamedTuple):
    kind: str  # unix | tcp
    path: str = ""
    host: str = ""
    port: int = 0


def parse_host(text: str) -> Listener:
    """``unix:///path`` or ``tcp://127.0.0.1:PORT`` (loopback only: no TLS yet)."""
    parts = urlsplit(text)
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path.startswith("/"):
            raise InvalidArgument(f"--host {text}: want unix:///absolute/path")
        return Listener("unix", path=path)
    if parts.scheme == "tcp":
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise InvalidArgument(f"--host {text}: invalid port") from None
        if not host or port is None:
            raise InvalidArgument(f"--host {text}: want tcp://127.0.0.1:PORT")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise InvalidArgument(
                f"--host {text}: refusing to serve the API on a non-loopback address without "
                "mutual TLS (anyone who can reach it would be root on this host); TLS is not "
                "supported yet: listen on 127.0.0.1 or a unix socket")
        return Listener("tcp", host=host, port=port)
    raise InvalidArgument(f"--host {text}: want unix:///PATH or tcp://127.0.0.1:PORT")


async def _unix_site(runner: web.AppRunner, path: str) -> web.UnixSite:
    socket_path = Path(path)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.is_socket():
        socket_path.unlink()  # a previous server's (a live one would still answer)
    old = os.umask(0o117)  # born 0660: never a moment open to everyone
    try:
        site = web.UnixSite(runner, path)
        await site.start()
    finally:
        os.umask(old)
    with contextlib.suppress(KeyError):
        os.chown(path, 0, grp.getgrnam("dockyard").gr_gid)
    os.chmod(path, 0o660)
    return site


async def serve(engine: Engine, hosts: list[str],
                ready: Callable[[list[str]], None] | None = None) -> None:
    """Listen on ``hosts`` until SIGTERM or SIGINT."""
    listeners = [parse_host(h) for h in hosts or [DEFAULT_HOST]]
    # built here, in one thread, before any request: the services' lazy properties
    _ = engine.containers, engine.images, engine.networks, engine.volumes
    runner = web.AppRunner(make_app(engine), handler_cancellation=True, access_log=None)
    await runner.setup()
    assert runner.server is not None
    runner.server.__class__ = _Server  # connections get _JsonErrors (no other hook)
    paths = []
    try:
        for listener in listeners:
            if listener.kind == "unix":
                await _unix_site(runner, listener.path)
                paths.append(listener.path)
            else:
                await web.TCPSite(runner, listener.host, listener.port).start()
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
