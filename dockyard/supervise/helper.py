"""Work done in a throw-away fork of the supervisor.

A supervisor shares most of its memory with the zygote and its siblings; code it
runs only once per start (the runtime's create, netlink setup) would touch and
un-share pages for the rest of the container's life.  Run in a short-lived fork,
those pages go away with the fork.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from dockyard.errors import DockyardError


def run_in_fork(work: Callable[[], int]) -> int:
    """Run ``work`` in a forked child; its int result comes back, or RuntimeError(message)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        answer: dict[str, object]
        try:
            answer = {"value": work()}
        except DockyardError as exc:
            answer = {"error": exc.message}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_fd, json.dumps(answer).encode() + b"\n")
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        # one line, not "until EOF": a process the helper forks may keep a copy of the pipe
        data = pipe.readline()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data or b'{"error": "helper died"}')
    if "error" in result:
        raise RuntimeError(str(result["error"]))
    return int(result["value"])
