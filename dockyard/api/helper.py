"""``python -m dockyard.api.helper ROOT REQUEST``: engine work that forks into a
container's namespaces (wiring a running container into a network), done in a
single-threaded process of its own: the API server never forks.

REQUEST is JSON (``{"op": "connect", ...}``); an error comes back on stdout as
``{"kind": ..., "message": ...}`` with exit status 1, to be raised again as the same
kind by the server (``run``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from dockyard.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    ErrorKind,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)

_KINDS: dict[str, type[DockyardError]] = {
    ErrorKind.INVALID_ARGUMENT: InvalidArgument, ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.ALREADY_EXISTS: AlreadyExists, ErrorKind.CONFLICT: Conflict,
    ErrorKind.PERMISSION_DENIED: PermissionDenied,
    ErrorKind.UNAVAILABLE: Unavailable}


async def run(root: Path, request: dict[str, Any]) -> None:
    """Run ``request`` in a helper process for ``root``; its error raised here."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dockyard.api.helper", str(root), json.dumps(request),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    out, err = await process.communicate()
    if process.returncode == 0:
        return
    try:
        answer = json.loads(out)
        kind, message = str(answer["kind"]), str(answer["message"])
    except (ValueError, KeyError, TypeError):
        raise InternalError(f"helper failed: {err.decode(errors='replace').strip()}") \
            from None
    raise _KINDS.get(kind, InternalError)(message)


def _connect(root: Path, request: dict[str, Any]) -> None:
    from dockyard.engine.container_network import connect
    from dockyard.engine.engine import Engine
    from dockyard.store.layout import Layout

    engine = Engine(Layout.for_root(root))
    record = engine.containers.get(request["container"])
    try:
        connect(engine.containers, record, request["network"], tuple(request["aliases"]),
                request["ip"])
    except RuntimeError as exc:  # the forked wiring's failure
        raise InternalError(str(exc)) from exc


def main(argv: list[str]) -> int:
    root, request = Path(argv[1]), json.loads(argv[2])
    try:
        if request.get("op") != "connect":
            raise InvalidArgument(f"unknown helper request {request.get('op')!r}")
        _connect(root, request)
    except DockyardError as exc:
        print(json.dumps({"kind": exc.kind, "message": exc.message}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
