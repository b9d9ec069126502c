"""``/events``: the root's event log (``engine.events``) as Docker streams it — JSON
documents, one per line; past ones from ``since``, new ones as they come (a thread of
its own per client, ended when the client goes) until ``until``; Docker's filters."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.server import ENGINE, Router, _common_headers
from dockyard.api.streams import iterate
from dockyard.engine.events import FILTERS, matches, parse_time
from dockyard.errors import InvalidArgument


def register(router: Router) -> None:
    router.add("GET", "/events", events)


async def events(request: web.Request) -> web.StreamResponse:
    wanted = params.filters(request)
    unknown = sorted(set(wanted) - set(FILTERS))
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    since = parse_time(request.query["since"]) if request.query.get("since") else None
    until = parse_time(request.query["until"]) if request.query.get("until") else None
    if since is not None and until is not None and until < since:
        raise InvalidArgument("`since` time must be before `until`")
    log = request.app[ENGINE].events
    follow = until is None or until > time.time()

    def found(stop: threading.Event) -> Iterator[dict[str, Any]]:
        return (e for e in log.read(since=since, until=until, follow=follow,
                                    stop=stop.is_set) if matches(e, wanted))

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    _common_headers(response)
    await response.prepare(request)
    async for event in iterate(found):
        await response.write(json.dumps(event).encode() + b"\n")
    await response.write_eof()
    return response
