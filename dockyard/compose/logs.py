"""The logs of several containers as one stream: each container read in turn, or, to
follow, all at once (one reader thread each), lines in the order they arrive."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord

Entry = tuple["ContainerRecord", dict[str, str]]


def stream_logs(engine: Engine, records: list[ContainerRecord], *, follow: bool,
                tail: int | None, ends: bool = False) -> Iterator[Entry]:
    """Entries ``(record, {"log": …, "stream": …})``; following with ``ends``, also
    ``(record, {})`` when a container's log has ended (it exited)."""
    if not follow:
        for record in records:
            for entry in engine.containers.logs(record.id, tail=tail):
                yield record, entry
        return
    lines: queue.Queue[Entry] = queue.Queue()
    done = threading.Event()

    def read(record: ContainerRecord) -> None:
        try:
            for entry in engine.containers.logs(record.id, follow=True, tail=tail,
                                                stop=done.is_set):
                lines.put((record, entry))
        finally:
            lines.put((record, {}))

    threads = [threading.Thread(target=read, args=(r,), daemon=True) for r in records]
    for thread in threads:
        thread.start()
    open_readers = len(threads)
    try:
        while open_readers:
            item = lines.get()
            if not item[1]:
                open_readers -= 1
                if ends:
                    yield item
            else:
                yield item
    finally:
        done.set()
