"""Leak checks: what a test left behind on the host that it did not have before.

Mounts, network namespaces, network links, cgroups named like test cgroups,
dockyard's iptables chains (``DY-*``), and live child processes of the test process.
A leak is a bug: the kernel tests compare a snapshot before and after each test
and fail on any difference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

CGROUP_ROOT = Path("/sys/fs/cgroup")
TEST_CGROUP_PREFIX = "dockyard-"  # tests' own cgroups and every container's


class HostSnapshot(NamedTuple):
    mounts: frozenset[str]
    netns: frozenset[str]
    links: frozenset[str]
    cgroups: frozenset[str]
    chains: frozenset[str]
    children: frozenset[int]


def _mounts() -> frozenset[str]:
    with open("/proc/self/mountinfo") as handle:
        return frozenset(line.split()[4] for line in handle)


def _test_cgroups(root: Path = CGROUP_ROOT) -> frozenset[str]:
    found = set()
    if root.is_dir():
        for hierarchy in root.iterdir():
            if hierarchy.is_dir():
                for entry in hierarchy.glob(f"**/{TEST_CGROUP_PREFIX}*"):
                    found.add(str(entry))
    return frozenset(found)


def _chains() -> frozenset[str]:
    """dockyard's iptables chains (one filter and one nat chain per root in use)."""
    import shutil
    import subprocess

    if shutil.which("iptables-save") is None:
        return frozenset()
    result = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    return frozenset(line.split()[0][1:] for line in result.stdout.splitlines()
                     if line.startswith(":DY-"))


def _children() -> frozenset[int]:
    me = os.getpid()
    kids = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[1]) == me and fields[0] not in (b"Z", b"X"):
            kids.add(int(name))
    return frozenset(kids)


def snapshot() -> HostSnapshot:
    netns_dir = Path("/run/netns")
    return HostSnapshot(
        mounts=_mounts(),
        netns=frozenset(os.listdir(netns_dir)) if netns_dir.is_dir() else frozenset(),
        links=frozenset(os.listdir("/sys/class/net")),
        cgroups=_test_cgroups(),
        chains=_chains(),
        children=_children(),
    )


def leaked(before: HostSnapshot, after: HostSnapshot | None = None) -> dict[str, list[str]]:
    """What exists now that did not before, per kind; empty when clean."""
    now = after or snapshot()
    report: dict[str, list[str]] = {}
    for kind in HostSnapshot._fields:
        extra = getattr(now, kind) - getattr(before, kind)
        if extra:
            report[kind] = sorted(str(item) for item in extra)
    return report
