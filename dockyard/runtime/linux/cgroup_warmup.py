"""Taking the cgroup attach lock's grace period early, off the start path.

Moving a process between cgroups takes the kernel's threadgroup lock, whose first
writer waits for an RCU grace period (10-30 ms on this VM kind); writers that
follow within a grace period do not.  A container's init is moved into its
cgroups moments after the runtime made them, so that wait lands on every start.
``warm_attach_lock`` makes a no-op move of the calling process into its own
cgroup, in a thread: called as the engine begins a create, the grace period
passes while the engine and the runtime do other work, and the init's move is
~0.2 ms.  Best effort: nothing depends on it.  (Not in ``cgroups``: the engine
calls it before anything else, and that package's imports cost ~5 ms.)
"""

from __future__ import annotations

import os
import threading

_V1_PIDS = "/sys/fs/cgroup/pids"
_V2_ROOT = "/sys/fs/cgroup"


def warm_attach_lock() -> None:
    threading.Thread(target=_move_to_own_cgroup, daemon=True).start()


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
