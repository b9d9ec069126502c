"""Errors as Docker's Engine API answers them: a status from the error's kind and a
``{"message": …}`` body, in one place.  Anything that is not a ``DockyardError`` is a
bug: its traceback goes to the server's log and the client gets a 500."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dockyard.errors import DockyardError, ErrorKind

log = logging.getLogger("dockyard.api")

STATUS = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.ALREADY_EXISTS: 409,
    ErrorKind.CONFLICT: 409,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.NOT_IMPLEMENTED: 501,
    ErrorKind.DATA_LOSS: 500,
    ErrorKind.INTERNAL: 500,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NotModified(Exception):
    """Docker's 304: start of a running container, stop of a stopped one."""


def error_response(status: int, message: str) -> web.Response:
    # exactly "application/json": the docker CLI reads the message only then
    return web.Response(status=status, body=json.dumps({"message": message}).encode() + b"\n",
                        headers={"Content-Type": "application/json"})


def status_for(exc: DockyardError) -> int:
    return STATUS.get(exc.kind, 500)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotModified:
        return web.Response(status=304)
    except DockyardError as exc:
        return error_response(status_for(exc), exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = "page not found" if exc.status == 404 else exc.reason
        return error_response(exc.status, message)
    except HttpProcessingError as exc:  # a body aiohttp could not read (bad chunking)
        return error_response(exc.code if 400 <= exc.code < 500 else 400,
                              f"bad request body: {exc.message}")
    except (ConnectionResetError, BrokenPipeError):
        raise  # the client went away: nothing to answer
    except Exception as exc:  # noqa: BLE001 - the front end: a bug is a 500, not a crash
        log.exception("%s %s", request.method, request.path)
        return error_response(500, f"internal error: {exc}")
