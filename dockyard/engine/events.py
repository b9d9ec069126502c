"""The root's event log: what happened to containers, images, networks and volumes, in
Docker's event shape, for ``dockyard events`` and the API's ``/events``.

Recording is cheap on purpose (the start path records ``start``): one ``write`` of one
JSON line to ``<root>/events.jsonl`` opened ``O_APPEND`` — atomic for a line this
short, so concurrent writers never interleave — and no fsync: a crash may lose the
last events, never the store's consistency.  A recording failure never fails the
operation it describes.  The file is rotated once past ``LIMIT`` bytes (one older
generation kept), so it never grows without bound.

Readers (``read``) go through the older generation and then the current file, and
with ``follow`` poll the current one for new lines (rotation included).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument

FILE = "events.jsonl"
LIMIT = 4 * 1024 * 1024
_POLL = 0.1


class EventLog:
    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FILE

    def record(self, kind: str, action: str, actor_id: str,
               attributes: dict[str, str] | None = None) -> None:
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": kind, "Action": action,
            "Actor": {"ID": actor_id, "Attributes": attributes or {}},
            "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if kind == "container":  # the fields of Docker's API before 1.22, still sent
            event.update(status=action, id=actor_id, **{"from": (attributes or {}).get(
                "image", "")})
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
            try:
                os.write(fd, line)
                if os.fstat(fd).st_size > LIMIT:
                    os.replace(self.path, self.path.with_name(FILE + ".1"))
            finally:
                os.close(fd)

    def container(self, action: str, container_id: str, name: str, image: str,
                  labels: dict[str, str] | None = None, **extra: str) -> None:
        """A container event: Docker's attributes are its labels, image and name."""
        self.record("container", action, container_id,
                    {**(labels or {}), "image": image, "name": name, **extra})

    def read(self, *, since: float | None = None, until: float | None = None,
             follow: bool = False,
             stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
        """Events from ``since`` (seconds; None: only new ones when following, all
        otherwise) to ``until``; with ``follow``, new ones as they come until ``until``
        passes or ``stop()``."""
        if since is not None or not follow:
            for event in self._past():
                stamp = event.get("timeNano", 0) / 1e9
                if since is not None and stamp < since:
                    continue
                if until is not None and stamp > until:
                    return
                yield event
        if not follow:
            return
        yield from self._follow(until, stop)

    def _past(self) -> Iterator[dict[str, Any]]:
        for path in (self.path.with_name(FILE + ".1"), self.path):
            try:
                with open(path, "rb") as handle:
                    yield from _parse(handle.read())
            except FileNotFoundError:
                continue

    def _follow(self, until: float | None,
                stop: Callable[[], bool]) -> Iterator[dict[str, Any]]:
        handle = self._open_at_end()
        try:
            pending = b""
            while not stop() and (until is None or time.time() <= until):
                data = handle.read() if handle is not None else b""
                if data:
                    pending += data
                    complete, _, pending = pending.rpartition(b"\n")
                    for event in _parse(complete):
                        if until is not None and event.get("timeNano", 0) / 1e9 > until:
                            return
                        yield event
                    continue
                if handle is None or self._rotated(handle):
                    if handle is not None:
                        handle.close()
                    handle = self._open(0)
                time.sleep(_POLL)
        finally:
            if handle is not None:
                handle.close()

    def _open(self, whence: int) -> Any:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed by _follow
        except FileNotFoundError:
            return None
        handle.seek(0, whence)
        return handle

    def _open_at_end(self) -> Any:
        return self._open(os.SEEK_END)

    def _rotated(self, handle: Any) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                yield event


def matches(event: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event (action), container, image, network,
    volume, label — any value of one key, every key."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    kind = event.get("Type", "")
    for key, values in wanted.items():
        if not values:
            continue
        if key == "type":
            ok = kind in values
        elif key in ("event", "action"):
            ok = any(event.get("Action", "").split(":")[0] == v for v in values)
        elif key in ("container", "network", "volume"):
            ok = kind == key and any(actor.get("ID", "").startswith(v) or
                                     attributes.get("name") == v for v in values)
        elif key == "image":
            ok = any(attributes.get("image") == v or (kind == "image" and (
                actor.get("ID") == v or attributes.get("name") == v)) for v in values)
        elif key == "label":
            ok = all(_label(attributes, v) for v in values)
        else:
            ok = False
        if not ok:
            return False
    return True


def _label(attributes: dict[str, str], wanted: str) -> bool:
    name, sep, value = wanted.partition("=")
    return name in attributes and (not sep or attributes[name] == value)


def parse_time(text: str) -> float:
    """Docker's ``since``/``until``: Unix seconds (a fraction allowed), an RFC 3339
    time, or a duration ago (``10s``, ``5m``, ``2h``)."""
    import datetime
    import re

    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = re.fullmatch(r"(\d+)(s|m|h)", text)
    if match:
        return time.time() - int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        raise InvalidArgument(f"invalid time {text!r}: want Unix seconds, an RFC 3339 "
                              "time or a duration such as 10m") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


FILTERS = ("type", "event", "action", "container", "image", "network", "volume", "label")
