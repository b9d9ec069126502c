"""Transfer progress: a rich bar per layer on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from dockyard.cli.container_cmds import echo


class PlainProgress:
    """One line per layer when it finishes (logs, pipes, CI)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def start(self, key: str, total: int, what: str) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def done(self, key: str, status: str) -> None:
        with self._lock:
            echo(f"{key}: {status}")  # (no click.echo: a pull is the fast path's)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class RichProgress:
    def __init__(self) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  DownloadColumn(), transient=False)
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self, key: str, total: int, what: str) -> None:
        with self._lock:
            self._tasks[key] = self._progress.add_task(f"{key}: {what}", total=total)

    def advance(self, key: str, amount: int) -> None:
        with self._lock:
            if key in self._tasks:
                self._progress.advance(self._tasks[key], amount)

    def done(self, key: str, status: str) -> None:
        with self._lock:
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(f"{key}: {status}", total=1)
            task = self._tasks[key]
            self._progress.update(task, description=f"{key}: {status}",
                                  completed=self._progress.tasks[task].total)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()


def progress_for_terminal(quiet: bool = False) -> PlainProgress | RichProgress:
    if not quiet and sys.stdout.isatty():
        return RichProgress()
    return PlainProgress()
