"""Light cgroup access for the engine's hot paths (``cgroups`` costs ~5 ms of imports).

``is_frozen``: whether a container is paused, read from its freezer as the
runtime's state records the cgroup (what ``runtime.state.status_of`` decides
with the whole cgroup manager), for ``ps`` and ``inspect`` of many containers.

``warm_attach_lock``: taking the cgroup attach lock's grace period early.

Moving a process between cgroups takes the kernel's threadgroup lock, whose first
writer waits for an RCU grace period (10-30 ms on this VM kind); writers that
follow within a grace period do not.  A container's init is moved into its
cgroups moments after the runtime made them, so that wait lands on every start.
``warm_attach_lock`` makes a no-op move of the calling process into its own
cgroup, in a thread: called as the engine begins a create, the grace period
passes while the engine and the runtime do other work, and the init's move is
~0.2 ms.  Best effort: nothing depends on it.
"""

from __future__ import annotations

import _thread
import os

from dockyard import jsonlite
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import StrPath

_V1_PIDS = "/sys/fs/cgroup/pids"
_V2_ROOT = "/sys/fs/cgroup"


STATE_FILE = "state.json"  # runtime.state.STATE_FILE


def _read(*path: str) -> str:
    with open(os.path.join(*path)) as handle:
        return handle.read()


def is_frozen(container_dir: StrPath) -> bool:
    """The freezer of the container whose runtime state is in ``container_dir`` says
    frozen (v1 ``freezer.state`` FROZEN, v2 ``cgroup.freeze`` 1); False when there
    is no such state or cgroup."""
    try:
        cgroup = jsonlite.loads(_read(os.fspath(container_dir), STATE_FILE)).get("cgroup") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return frozen(cgroup)


def frozen(cgroup: dict[str, object]) -> bool:
    """The freezer of the cgroup a runtime state records (``CgroupManager.to_dict``)
    says frozen; False when it says nothing or the cgroup is gone."""
    try:
        if cgroup.get("version") == 2:
            return _read(str(cgroup["dir"]), "cgroup.freeze").strip() == "1"
        dirs = cgroup.get("dirs")
        freezer = str(dirs.get("freezer") or "") if isinstance(dirs, dict) else ""
        return bool(freezer) and \
            _read(freezer, "freezer.state").strip() == "FROZEN"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def warm_attach_lock() -> None:
    # _thread: a thread without threading's import (~0.6 ms of the runtime's every
    # create); the runtime never joins it, and exits with os._exit
    _thread.start_new_thread(_move_to_own_cgroup, ())


def _move_to_own_cgroup() -> None:
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
        for line in lines:
            _hierarchy, controllers, path = line.split(":", 2)
            if controllers == "pids" and os.path.isdir(_V1_PIDS):
                base = _V1_PIDS
            elif controllers == "" and os.path.exists(f"{_V2_ROOT}/cgroup.procs"):
                base = _V2_ROOT
            else:
                continue
            fd = os.open(f"{base}{path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
            return
    except (OSError, ValueError):
        return
