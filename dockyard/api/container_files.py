"""A container's files: archive (GET, HEAD, PUT — ``docker cp``), export, changes.

All of it goes through the engine's descriptor-based copy (``copy_out``, ``copy_in``,
``stat_path``, ``export``, ``diff``): a path is resolved inside the container's root
in one step, never as a host path string.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import posixpath
import stat
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.server import ENGINE, Router, _common_headers
from dockyard.api.streams import body_file, call, response_file
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument, NotFound

STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode type bits, which Docker's clients decode
_DIR, _SYMLINK, _DEVICE, _PIPE, _SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_SETUID, _SETGID, _CHAR, _STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def register(router: Router) -> None:
    router.add("HEAD", "/containers/{id}/archive", head_archive)
    router.add("GET", "/containers/{id}/archive", get_archive)
    router.add("PUT", "/containers/{id}/archive", put_archive)
    router.add("GET", "/containers/{id}/export", export)
    router.add("GET", "/containers/{id}/changes", changes)


def go_file_mode(mode: int) -> int:
    """A ``st_mode`` as Go's ``os.FileMode``."""
    result = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    result |= {stat.S_IFDIR: _DIR, stat.S_IFLNK: _SYMLINK, stat.S_IFBLK: _DEVICE,
               stat.S_IFCHR: _DEVICE | _CHAR, stat.S_IFIFO: _PIPE,
               stat.S_IFSOCK: _SOCKET}.get(kind, 0)
    for bit, go in ((stat.S_ISUID, _SETUID), (stat.S_ISGID, _SETGID),
                    (stat.S_ISVTX, _STICKY)):
        if mode & bit:
            result |= go
    return result


def path_stat(path: str, st: os.stat_result) -> dict[str, Any]:
    clean = posixpath.normpath("/" + path)
    mtime = datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC)
    return {"name": posixpath.basename(clean) or "/", "size": st.st_size,
            "mode": go_file_mode(st.st_mode),
            "mtime": mtime.isoformat().replace("+00:00", "Z"), "linkTarget": ""}


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    return path


async def _stat_header(request: web.Request, engine: Engine, ref: str, path: str) -> str:
    record = await call(request, engine.containers.get, ref)
    found = await call(request, engine.container_ops.stat_path, record.id, path)
    if found is None:
        raise NotFound(f"Could not find the file {path} in container {ref}")
    return base64.b64encode(json.dumps(path_stat(path, found)).encode()).decode()


async def head_archive(request: web.Request) -> web.Response:
    engine, ref, path = request.app[ENGINE], request.match_info["id"], _path(request)
    header = await _stat_header(request, engine, ref, path)
    return web.Response(status=200, headers={STAT_HEADER: header,
                                             "Content-Type": "application/x-tar"})


async def get_archive(request: web.Request) -> web.StreamResponse:
    engine, ref, path = request.app[ENGINE], request.match_info["id"], _path(request)
    header = await _stat_header(request, engine, ref, path)
    response = web.StreamResponse(headers={STAT_HEADER: header,
                                           "Content-Type": "application/x-tar"})
    _common_headers(response)
    await response.prepare(request)
    out = response_file(response)
    await call(request, engine.container_ops.copy_out, ref, path, out)
    await call(request, out.flush)
    await response.write_eof()
    return response


async def put_archive(request: web.Request) -> web.Response:
    """The body, a tar, extracted into the directory ``path`` inside the container."""
    engine, ref, path = request.app[ENGINE], request.match_info["id"], _path(request)
    params.flag(request, "noOverwriteDirNonDir")  # always so: checked, and the rule kept
    keep_ids = params.flag(request, "copyUIDGID")
    record = await call(request, engine.containers.get, ref)
    found = await call(request, engine.container_ops.stat_path, record.id, path)
    if found is None:
        raise NotFound(f"Could not find the file {path} in container {ref}")
    if not stat.S_ISDIR(found.st_mode):
        raise InvalidArgument("extraction point is not a directory")
    await call(request, engine.container_ops.copy_in, record.id, body_file(request), path,
               owner=None if keep_ids else (0, 0))
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    record = await call(request, engine.containers.get, request.match_info["id"])
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    _common_headers(response)
    await response.prepare(request)
    out = response_file(response)
    await call(request, engine.container_ops.export, record.id, out)
    await call(request, out.flush)
    await response.write_eof()
    return response


_KINDS = {"C": 0, "A": 1, "D": 2}


async def changes(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    found = await call(request, engine.container_ops.diff, request.match_info["id"])
    return web.json_response([{"Path": path, "Kind": _KINDS[kind]} for kind, path in found]
                             or None)
