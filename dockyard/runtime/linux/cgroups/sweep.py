"""Remove a family of cgroups by name, whoever made them: ``system reset`` finds a
root's container and build cgroups by the mark in their names (``dockyard-<tag>-…``,
see ``Layout.cgroup_path``), also once the root's directory and records are gone.

Only cgroups directly under a hierarchy's root whose name starts with the prefix
are touched.  A process is killed only while it is still in one of them (checked
in ``/proc/PID/cgroup`` just before the signal), so a pid reused meanwhile is left
alone; a frozen cgroup is thawed so that its processes can die.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from dockyard.runtime.linux.cgroups import common


def named(prefix: str, root: str | Path) -> list[Path]:
    """Every cgroup ``root/<hierarchy>/<prefix>…`` (and ``root/<prefix>…`` when
    ``root`` is itself a unified mount)."""
    root = Path(root)
    found = []
    for hierarchy in common.cgroup_mounts(root):
        base = root / hierarchy if hierarchy else root
        with contextlib.suppress(OSError):
            found += [base / name for name in sorted(os.listdir(base))
                      if name.startswith(prefix) and (base / name).is_dir()]
    return found


def _still_inside(pid: int, names: set[str]) -> bool:
    try:
        paths = common.own_cgroups(pid).values()
    except (OSError, ValueError):
        return False
    return any(path.strip("/").split("/")[0] in names for path in paths)


def _kill_members(directory: Path, names: set[str]) -> None:
    for sub, _dirs, _files in os.walk(directory):
        for pid in common.read_pids(Path(sub)):
            if _still_inside(pid, names):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        freezer = Path(sub) / "freezer.state"
        with contextlib.suppress(OSError):
            if freezer.read_text().strip() != "THAWED":
                freezer.write_text("THAWED")


def _empty(directory: Path) -> bool:
    return not any(common.read_pids(Path(sub)) for sub, _d, _f in os.walk(directory))


def remove_named(prefix: str, root: str | Path, timeout: float = 10.0) -> list[str]:
    """Kill what runs in every cgroup named ``prefix…`` and remove them; returns the
    cgroup names removed (once each, whatever the number of hierarchies)."""
    directories = named(prefix, root)
    names = {d.name for d in directories}
    for directory in directories:
        _kill_members(directory, names)
    deadline = time.monotonic() + timeout
    for directory in directories:
        while not _empty(directory) and time.monotonic() < deadline:
            time.sleep(0.02)
        common.remove_tree(directory)
    return sorted(names)
