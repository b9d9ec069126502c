"""The runtime's log: stderr always, plus ``--log FILE`` in runc's text or JSON format.

containerd reads the JSON lines of this file to explain a failed ``create``, so the
error line is ``{"level": "error", "msg": ..., "time": ...}`` exactly as runc writes.
"""

from __future__ import annotations

import sys
import time

from dockyard import jsonlite

_target: str | None = None
_format = "text"


def configure(path: str | None, fmt: str) -> None:
    global _target, _format
    _target, _format = path, fmt


def _write(level: str, message: str) -> None:
    if _target is None:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _format == "json":
        line = jsonlite.dumps({"level": level, "msg": message, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg="{message}"'
    try:
        with open(_target, "a") as handle:
            handle.write(line + "\n")
    except OSError:
        pass


def error(message: str) -> None:
    _write("error", message)
    print(f"dockyard-runtime: {message}", file=sys.stderr)


def warning(message: str) -> None:
    _write("warning", message)
    print(f"dockyard-runtime: warning: {message}", file=sys.stderr)
