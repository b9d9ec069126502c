"""Leak checks: what a test left behind on the host that it did not have before, and
what of the host's it removed.

Mounts, network namespaces, network links, cgroups named like test cgroups (in every
mounted cgroup hierarchy, v1 and the v2 unified one), dockyard's iptables chains
(``DY-*``), the host's IP forwarding and FORWARD policy (a test's network of its own
must not turn the host into a router), live child processes of the test process, and
dockyard's own daemonized processes (supervisor zygotes and the supervisors they fork,
which reparent to pid 1) started since the snapshot.  A leak is a bug: the kernel
tests compare a snapshot before and after each test and fail on any difference.

Not a leak: the ``/run/netns`` mount point itself.  The first ``ip netns add`` on a
machine bind-mounts that directory onto itself (shared), once and for good; every
namespace file under it is still counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

CGROUP_ROOT = Path("/sys/fs/cgroup")
TEST_CGROUP_PREFIX = "dockyard-"  # tests' own cgroups and every container's
NETNS_DIR = "/run/netns"  # iproute2's named network namespaces
# Kinds of host object a test must never remove if it did not make them (reported as
# removed_<kind>); cgroups and processes come and go with their owners.
NO_REMOVAL = ("mounts", "netns", "links", "chains", "settings")
# How long dockyard's daemons get to finish exiting after a test (a zygote notices its
# last supervisor's exit asynchronously): gone by then is not a leak.
DAEMON_GRACE = 5.0
# The modules dockyard runs as daemonizing processes (``python -m MODULE``); a
# supervisor is forked from a zygote and keeps its command line.
# (``dockyard.kube.controller``: the reconcile loop of `kube play --detach`)
DAEMON_MODULES = frozenset({"dockyard.supervise.zygote", "dockyard.supervise.monitor",
                            "dockyard.kube.controller"})


class HostSnapshot(NamedTuple):
    mounts: frozenset[str]
    netns: frozenset[str]
    links: frozenset[str]
    cgroups: frozenset[str]
    chains: frozenset[str]
    settings: frozenset[str]  # host-wide settings: "net.ipv4.ip_forward=0", "FORWARD ACCEPT"
    children: frozenset[int]
    daemons: frozenset[str]  # "PID@START: cmdline" of dockyard's daemonized processes
    taken_at: int  # clock ticks since boot when the snapshot began


class _MountEntry(NamedTuple):
    device: str  # major:minor
    root: str  # the mounted directory, inside its filesystem
    point: str


def _mountinfo(text: str) -> list[_MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5:
            entries.append(_MountEntry(fields[2], fields[3], fields[4]))
    return entries


def _mounts(mountinfo: str | None = None, netns_dir: str = NETNS_DIR) -> frozenset[str]:
    """Every mount point but ``netns_dir``'s own mount and its propagation twins (the
    same directory of the same filesystem showing up again below a peer of its parent
    mount, e.g. ``/some/bind/of/run/netns``); the namespace files mounted under it
    count like any mount."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as handle:
            mountinfo = handle.read()
    entries = _mountinfo(mountinfo)
    netns_mount = {(e.device, e.root) for e in entries if e.point == netns_dir}
    name = os.path.basename(netns_dir)
    return frozenset(
        e.point for e in entries
        if e.point != netns_dir
        and not ((e.device, e.root) in netns_mount and os.path.basename(e.point) == name))


def _cgroup_hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Where cgroup filesystems are mounted: each v1 hierarchy and the v2 unified one
    (``/sys/fs/cgroup/unified`` beside v1, or ``/sys/fs/cgroup`` itself on a v2-only
    host)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as handle:
            mountinfo = handle.read()
    found = []
    for line in mountinfo.splitlines():
        _, _, after = line.partition(" - ")
        if after.split()[:1] in (["cgroup"], ["cgroup2"]):
            found.append(Path(line.split()[4]))
    return found


def _test_cgroups(hierarchies: Iterable[Path] | None = None) -> frozenset[str]:
    found = set()
    if hierarchies is None:
        hierarchies = _cgroup_hierarchies()
    for hierarchy in hierarchies:
        if hierarchy.is_dir():
            found |= _glob_cgroups(hierarchy)
    return frozenset(found)


def _glob_cgroups(hierarchy: Path) -> set[str]:
    """The test cgroups of one hierarchy; a walk that meets a cgroup removed under it
    (another process's container ending) is walked again."""
    for _attempt in range(10):
        try:
            # "**/" matches the hierarchy's root too: a cgroup right at the top of a
            # v2-only /sys/fs/cgroup is found
            return {str(entry) for entry in hierarchy.glob(f"**/{TEST_CGROUP_PREFIX}*")
                    if entry.is_dir()}
        except FileNotFoundError:
            continue
    return set()


def _chains_and_policy() -> tuple[frozenset[str], str]:
    """dockyard's iptables chains (one filter and one nat chain per root in use), and
    the filter table's FORWARD policy ("FORWARD ACCEPT"; "" without iptables)."""
    import shutil
    import subprocess

    if shutil.which("iptables-save") is None:
        return frozenset(), ""
    result = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    chains, policy, table = set(), "", ""
    for line in result.stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":DY-"):
            chains.add(line.split()[0][1:])
        elif table == "filter" and line.startswith(":FORWARD "):
            policy = "FORWARD " + line.split()[1]
    return frozenset(chains), policy


def _settings(policy: str) -> frozenset[str]:
    with open("/proc/sys/net/ipv4/ip_forward") as handle:
        found = {f"net.ipv4.ip_forward={handle.read().strip()}"}
    return frozenset(found | ({policy} if policy else set()))


def _stat(pid: str) -> tuple[bytes, int, int] | None:
    """(state, parent pid, start time in clock ticks since boot) of a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _children() -> frozenset[int]:
    me = os.getpid()
    kids = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _stat(name)
        if stat is not None and stat[1] == me and stat[0] not in (b"Z", b"X"):
            kids.add(int(name))
    return frozenset(kids)


def is_dockyard_daemon(argv: list[str]) -> bool:
    """A command line of one of dockyard's daemonizing processes: ``python [opts] -m
    dockyard.supervise.zygote …`` (and the supervisors it forks, which keep it)."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, "") in DAEMON_MODULES
        if arg in ("-W", "-X"):  # interpreter options with a separate value
            next(args, "")
        elif not arg.startswith("-") or arg == "-c":
            return False  # a script or a command: not a module
    return False


def _daemons() -> frozenset[str]:
    me = str(os.getpid())
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")[:-1]
        except OSError:
            continue
        if not is_dockyard_daemon(argv):
            continue
        stat = _stat(name)
        if stat is not None and stat[0] not in (b"Z", b"X"):
            found.add(f"{name}@{stat[2]}: {' '.join(argv)}")
    return frozenset(found)


def _started(daemon: str) -> int:
    return int(daemon.split(":", 1)[0].split("@")[1])


def _clock_ticks() -> int:
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))


def snapshot() -> HostSnapshot:
    taken_at = _clock_ticks()
    netns_dir = Path(NETNS_DIR)
    chains, policy = _chains_and_policy()
    return HostSnapshot(
        mounts=_mounts(),
        netns=frozenset(os.listdir(netns_dir)) if netns_dir.is_dir() else frozenset(),
        links=frozenset(os.listdir("/sys/class/net")),
        cgroups=_test_cgroups(),
        chains=chains,
        settings=_settings(policy),
        children=_children(),
        daemons=_daemons(),
        taken_at=taken_at,
    )


def _new_daemons(before: HostSnapshot, now: frozenset[str]) -> frozenset[str]:
    """dockyard daemons that started since ``before`` (never one that was there)."""
    return frozenset(d for d in now - before.daemons if _started(d) >= before.taken_at)


def leaked(before: HostSnapshot, after: HostSnapshot | None = None) -> dict[str, list[str]]:
    """What exists now that did not before, per kind, and what of the host's is gone
    (``removed_<kind>``); empty when clean."""
    now = after or snapshot()
    if after is None and _new_daemons(before, now.daemons):
        deadline = time.monotonic() + DAEMON_GRACE
        while time.monotonic() < deadline and _new_daemons(before, _daemons()):
            time.sleep(0.05)
        now = now._replace(daemons=_daemons())
    report: dict[str, list[str]] = {}
    for kind in HostSnapshot._fields:
        if kind == "taken_at":
            continue
        if kind == "daemons":
            extra: frozenset[object] = _new_daemons(before, now.daemons)
        else:
            extra = getattr(now, kind) - getattr(before, kind)
        if extra:
            report[kind] = sorted(str(item) for item in extra)
        if kind in NO_REMOVAL:
            gone = getattr(before, kind) - getattr(now, kind)
            if gone:
                report[f"removed_{kind}"] = sorted(str(item) for item in gone)
    return report
