"""Runtime leftovers of containers that have no record, for ``system check``.

A container's runtime state (``<run>/runtime/<id>``) and its cgroups
(``dockyard-<root's tag>-<first 24 of its id>`` in each hierarchy) are made by its supervisor's
create helper after the container's record exists, and deleted before the record
goes (``ContainerService.cleanup``).  Found without a record they were made after
it went (a create whose supervisor died, finished after the command that gave up on
the supervisor removed the container), or outlived a failed delete: nothing will
ever start, watch or delete them.  Only what is provably this root's, and
abandoned, is reported:

- runtime state: a saved state (``state.json``) in this root's runtime root (a
  folder without one is a create or a delete at work, or what a create helper
  killed half-way left: its init is then found through its cgroup);
- a cgroup: named like a container's, with no saved state, holding at least one
  process and only processes of this root that never ran a container's command (a
  create's half-made init still runs the code of this root's zygote or runtime).
  An empty cgroup, or one holding anyone else's process, may be another root's
  container in the making: it is left alone.

``--repair`` signals only recorded or found processes, verified by pid *and* start
time through a pidfd (never pid 0, never a group), then deletes the state or
removes the cgroup.
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Callable
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.store.layout import Layout
from dockyard.supervise import process as processes

# this root's (Layout.cgroup_path: dockyard-<owner tag>-<id24>), or one named before
# roots marked their cgroups (dockyard-<id24>: its processes then tell whose it is)
_CGROUP_NAME = r"dockyard-(?:{tag}-)?([0-9a-f]{{24}})"
_WAIT = 10.0  # for a SIGKILLed process to go


def check(layout: Layout, known: Callable[[str], bool], *, repair: bool) -> list[str]:
    """Problems found (and, with ``repair``, removed); ``known(prefix)``: whether a
    container record (or folder) has an id starting with ``prefix``."""
    return _states(layout, known, repair) + _cgroups(layout, known, repair)


def _saved(runtime_root: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in runtime_root.iterdir()
                      if (entry / "state.json").exists())
    except OSError:
        return []


def _states(layout: Layout, known: Callable[[str], bool], repair: bool) -> list[str]:
    problems = []
    for container_id in _saved(layout.runtime_root):
        # looked at after the listing: a record made since is seen (it comes first)
        if known(container_id) or not (layout.runtime_root / container_id /
                                       "state.json").exists():
            continue
        problems.append(f"runtime state {container_id[:12]}: no container")
        if repair:
            _delete_state(layout.runtime_root, container_id)
    return problems


def _delete_state(runtime_root: Path, container_id: str) -> None:
    from dockyard.runtime import operations
    from dockyard.runtime.state import ContainerDir

    try:
        record = ContainerDir(runtime_root, container_id).load()
    except DockyardError:
        return
    _kill_verified([(record.pid, record.pid_start)])
    with contextlib.suppress(Exception):  # what is left is reported again
        operations.delete(runtime_root, container_id, force=True)


def _kill_verified(found: list[tuple[int, int]]) -> None:
    """SIGKILL each process that is still the one found (pid and start time), and
    wait for it to go."""
    killed = [(pid, start) for pid, start in found if pid > 0 and start > 0 and
              processes.send_signal(pid, start, signal.SIGKILL)]
    for pid, start in killed:
        processes.wait_exit(pid, start, _WAIT)


def _cgroups(layout: Layout, known: Callable[[str], bool], repair: bool) -> list[str]:
    from dockyard.runtime.linux import cgroups

    problems = []
    saved = _saved(layout.runtime_root)
    pattern = re.compile(_CGROUP_NAME.format(tag=layout.owner_tag))
    for name in sorted(cgroups.top_level_names()):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        prefix = match.group(1)
        if any(i.startswith(prefix) for i in saved) or known(prefix):
            continue  # (a saved state is dealt with above, with its cgroup)
        manager = cgroups.open_manager(f"/{name}")
        members = _ours(manager.pids(), layout)
        if not members or (known(prefix) or not manager.exists()):
            continue
        problems.append(f"cgroup {name}: no container, its half-made init left running")
        if repair:
            _kill_verified(members)
            with contextlib.suppress(DockyardError):
                manager.destroy()
            _remove_unsaved(layout.runtime_root, prefix)
    return problems


def _ours(pids: list[int], layout: Layout) -> list[tuple[int, int]]:
    """(pid, start time) of every process given, if each is one of this root's that
    never ran a container's command; [] if any is not (or there are none)."""
    marks = {str(layout.run_dir), str(layout.runtime_root)}
    found = []
    for pid in pids:
        start = processes.start_time(pid)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            return []
        # the zygote's command line (``-m dockyard.supervise.zygote RUN_DIR``) or the
        # runtime's (``--root RUNTIME_ROOT``), read between two looks at the start time
        if start is None or processes.start_time(pid) != start or not marks & set(argv):
            return []
        found.append((pid, start))
    return found


def _remove_unsaved(runtime_root: Path, prefix: str) -> None:
    """The runtime folder (exec fifo, no state) a create killed half-way left."""
    from dockyard.runtime.state import ContainerDir

    with contextlib.suppress(OSError):
        for entry in runtime_root.iterdir():
            if entry.name.startswith(prefix) and not (entry / "state.json").exists():
                with contextlib.suppress(DockyardError):
                    ContainerDir(runtime_root, entry.name).remove()
