"""Which of a root's containers changed since the last look, told by the kernel.

A container's state is in two places: its row in SQLite (name, spec, what the
engine recorded) and the files of its folder that its supervisor and the engine
rewrite by rename (``status.json``: state, pid, exit, health; ``network.json``:
addresses and ports; the exit markers).  A long-lived reader (``dockyard serve``'s
container list) keeps what it built from them until one of them changes:

- SQLite: ``Database.version`` — other processes' commits and this one's own;
- a container's folder: an inotify watch on it.  The kernel queues the event inside
  the write or rename itself, so whoever reads the queue (``changed``) *after* a
  change was made — a CLI that returned, an API call that answered — sees it, and
  whatever is read after ``changed`` is at least that new.

A folder that cannot be watched (not made yet, the user's inotify watches used up,
or no inotify instance to be had: ``max_user_instances``) is reported as changed at
every look, so the reader rebuilds it each time rather than show it stale; an
overflowed queue reports every container changed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import NamedTuple

from dockyard.errors import KernelError
from dockyard.runtime.linux import syscalls as sc

_MASK = (sc.IN_MODIFY | sc.IN_ATTRIB | sc.IN_CLOSE_WRITE | sc.IN_MOVED_FROM | sc.IN_MOVED_TO
         | sc.IN_CREATE | sc.IN_DELETE | sc.IN_DELETE_SELF | sc.IN_MOVE_SELF | sc.IN_ONLYDIR)


class Changes(NamedTuple):
    containers: frozenset[str]  # whose folder changed (or cannot be watched)
    everything: bool  # the kernel dropped events: anything may have changed


class ContainerWatch:
    """inotify watches on containers' folders (under ``containers_dir``)."""

    def __init__(self, containers_dir: Path) -> None:
        self.containers_dir = containers_dir
        try:
            self._fd = sc.inotify_init1(sc.IN_NONBLOCK | sc.IN_CLOEXEC)
        except KernelError:  # EMFILE: the user's instances are used up; nothing watched
            self._fd = -1
        self._ids: dict[int, str] = {}  # watch descriptor -> container id
        self._watches: dict[str, int] = {}
        self._unwatched: set[str] = set()

    def fileno(self) -> int:
        """The inotify descriptor (readable when a change is queued); -1 if there is
        none (then nothing can be watched)."""
        return self._fd

    def watch(self, container_id: str) -> bool:
        """Watch the container's folder; False (and reported changed at every look
        until a later ``watch`` succeeds) when it cannot be watched."""
        if container_id in self._watches:
            return True
        if self._fd < 0:
            self._unwatched.add(container_id)
            return False
        try:
            wd = sc.inotify_add_watch(self._fd, str(self.containers_dir / container_id), _MASK)
        except KernelError:
            self._unwatched.add(container_id)
            return False
        self._unwatched.discard(container_id)
        self._watches[container_id] = wd
        self._ids[wd] = container_id
        return True

    def forget(self, container_id: str) -> None:
        self._unwatched.discard(container_id)
        wd = self._watches.pop(container_id, None)
        if wd is not None and self._ids.pop(wd, None) is not None:
            with contextlib.suppress(KernelError):  # gone with its folder already
                sc.inotify_rm_watch(self._fd, wd)

    def changed(self) -> Changes:
        """What changed since the last call (the kernel's queue, read empty)."""
        ids = set(self._unwatched)
        everything = False
        while self._fd >= 0:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                break
            for wd, mask, _name in sc.inotify_events(data):
                everything |= bool(mask & sc.IN_Q_OVERFLOW)
                container_id = self._ids.get(wd)
                if container_id is None:
                    continue
                ids.add(container_id)
                if mask & sc.IN_IGNORED:  # the folder is gone: the kernel dropped the watch
                    del self._ids[wd]
                    self._watches.pop(container_id, None)
        return Changes(frozenset(ids), everything)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
