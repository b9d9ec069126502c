"""The leak checker against the real kernel: a fresh machine's first ``ip netns add``,
dockyard's daemonized supervisors, a test cgroup in the v2 unified hierarchy, and host
objects a test removes.  Everything is made here and removed here; the machine-wide
state (``/run``) is only ever changed inside a private mount namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dockyard.testing import leaks
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

# In a private mount namespace: a machine that never had a named network namespace
# (no /run/netns mount, an empty /run), with /run shared and a shared bind of it at
# $1 (so iproute2's /run/netns mount gets a propagation twin there).
FRESH_RUN = """
set -e
umount -l /run/netns 2>/dev/null || true
mount -t tmpfs dy-leaktest /run
mount --make-shared /run
mount --bind /run "$1"
shift
exec "$@"
"""

PROBE = """
import json, subprocess, sys
from dockyard.testing import leaks
name = sys.argv[1]
before = leaks.snapshot()
subprocess.run(["ip", "netns", "add", name], check=True)
try:
    during = leaks.leaked(before)
finally:
    subprocess.run(["ip", "netns", "delete", name], check=True)
print(json.dumps([before.mounts and sorted(before.mounts), during, leaks.leaked(before)]))
"""

NETNS_KINDS = ("mounts", "netns", "removed_mounts", "removed_netns")


def test_first_ip_netns_add_on_a_fresh_machine(tmp_path: Path) -> None:
    twin = tmp_path / "twin-run"
    twin.mkdir()
    name = f"dyleak{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", FRESH_RUN, "bash",
         str(twin), sys.executable, "-c", PROBE, name],
        capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    mounts_before, during, after = json.loads(result.stdout)
    assert "/run/netns" not in mounts_before  # fresh indeed
    # the namespace counts, as a name and as mounts (also the twin below the bind of
    # /run); the /run/netns mount point iproute2 made (and its twin) does not
    assert {kind: during[kind] for kind in NETNS_KINDS if kind in during} == {
        "mounts": sorted([f"/run/netns/{name}", f"{twin}/netns/{name}"]),
        "netns": [name]}
    assert not [kind for kind in NETNS_KINDS if kind in after], after


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    return box


def test_daemonized_supervisor_and_zygote_are_seen(dy: Dockyard) -> None:
    before = leaks.snapshot()
    container = dy("run", "-d", "box:1", "sleep", "300").stdout.strip()
    try:
        running = leaks.leaked(before, leaks.snapshot())
        daemons = running.get("daemons", [])
        # the zygote and the supervisor it forked, both reparented away from this test
        assert len(daemons) >= 2, running
        assert all("-m dockyard.supervise.zygote" in line for line in daemons), daemons
        assert "children" not in running, running
    finally:
        dy("rm", "-f", container)
    assert "daemons" not in leaks.leaked(before)


def test_a_test_cgroup_in_the_unified_hierarchy_is_seen() -> None:
    with open("/proc/self/mountinfo") as handle:
        unified = [path for line, path in
                   ((line, Path(line.split()[4])) for line in handle)
                   if " - cgroup2 " in line]
    if not unified:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    before = leaks.snapshot()
    cgroup = unified[0] / f"dockyard-leaktest-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    try:
        assert str(cgroup) in leaks.leaked(before).get("cgroups", [])
    finally:
        cgroup.rmdir()
    assert str(cgroup) not in leaks.leaked(before).get("cgroups", [])


def test_removing_a_link_or_a_mount_that_was_there_is_reported(tmp_path: Path) -> None:
    link = f"dyleak{uuid.uuid4().hex[:8]}"
    point = tmp_path / "mnt"
    point.mkdir()
    subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "dy-leaktest", str(point)], check=True)
        try:
            before = leaks.snapshot()
        finally:
            subprocess.run(["umount", str(point)], check=True)
    finally:
        subprocess.run(["ip", "link", "delete", link], check=True)
    report = leaks.leaked(before)
    assert link in report.get("removed_links", []), report
    assert str(point) in report.get("removed_mounts", []), report
