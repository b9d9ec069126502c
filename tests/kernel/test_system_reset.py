"""``system reset`` (issue 11): a root's containers, images, volumes, networks and
directories go, and so do the host objects it made (bridges, veths, iptables chains,
cgroups), also when its directory was deleted by hand; another root's stay.

Each test works on roots of its own under tmp_path; the leak check verifies that
nothing of them is left and that nothing else was removed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.fs.tree import remove_tree
from dockyard.network import firewall
from dockyard.runtime.linux.cgroups import DEFAULT_ROOT
from dockyard.runtime.linux.cgroups.sweep import named
from dockyard.testing.cli import Dockyard, free_port, unmount_under
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Dockyard]:
    """Another root with a network of its own (a bridge and chains on the host)."""
    cli = Dockyard(tmp_path / "other", tmp_path / "docker-config")
    cli("network", "create", "otherside")
    yield cli
    cli("system", "reset", "-f")


def _bridge(dy: Dockyard, network: str) -> str:
    doc = json.loads(dy("network", "inspect", network).stdout)[0]
    return str(doc["Options"]["com.docker.network.bridge.name"])


def _gateway(dy: Dockyard, network: str) -> str:
    doc = json.loads(dy("network", "inspect", network).stdout)[0]
    return str(doc["IPAM"]["Config"][0]["Gateway"])


def _link(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _cgroups(dy: Dockyard) -> list[Path]:
    return named(dy.layout.cgroup_path("").lstrip("/"), DEFAULT_ROOT)


def _start_web(box: Dockyard) -> tuple[str, str]:
    """A container on a user network with a port published on that network's gateway
    (so the kernel's DNAT chains are made too); returns (bridge, container id)."""
    box("network", "create", "front")
    gateway = _gateway(box, "front")
    cid = box("run", "-d", "--name", "web", "--network", "front", "-p",
              f"{gateway}:{free_port()}:8080", "box:1", "sleep", "300").stdout.strip()
    return _bridge(box, "front"), cid


def test_reset_of_a_root_deleted_by_hand_removes_its_bridges_and_chains(
        box: Dockyard, other: Dockyard) -> None:
    bridge, cid = _start_web(box)
    default_bridge = _bridge(box, "bridge")
    root = str(box.root)
    assert set(firewall.existing_chains(root)) == {
        *firewall.chain_names(root), firewall.raw_chain(root), firewall.port_chains(root)[2]}
    status = json.loads((box.root / "containers" / cid / "status.json").read_text())
    box("kill", "web")
    # its supervisor done (exit recorded, rootfs unmounted), nothing writes in the root
    until("the supervisor gone", lambda: not os.path.exists(
        f"/proc/{status['supervisor_pid']}"))
    remove_tree(box.root)  # by hand: the records are gone, the host objects stay
    assert _link(bridge) and firewall.existing_chains(root)
    other_bridge, other_chains = _bridge(other, "otherside"), firewall.existing_chains(
        str(other.root))
    result = box("system", "reset", "-f")
    assert f"link {bridge}" in result.stdout.splitlines()
    assert not _link(bridge) and not _link(default_bridge)
    assert firewall.existing_chains(root) == []
    assert not box.root.exists()
    assert _link(other_bridge) and firewall.existing_chains(str(other.root)) == other_chains
    assert box("system", "reset", "-f").stdout == ""  # nothing left to do


def test_reset_kills_what_runs_in_the_cgroups_of_a_deleted_root(box: Dockyard) -> None:
    bridge, cid = _start_web(box)
    pid = int(box("inspect", "-f", "{{.State.Pid}}", "web").stdout)
    assert _cgroups(box)
    unmount_under(box.root)
    remove_tree(box.root)  # under a running container: its processes and cgroups stay
    assert os.path.exists(f"/proc/{pid}")
    result = box("system", "reset", "-f").stdout.splitlines()
    assert f"cgroup {box.layout.cgroup_path(cid[:24]).lstrip('/')}" in result
    until("the container's init gone", lambda: not os.path.exists(f"/proc/{pid}"))
    assert _cgroups(box) == [] and not _link(bridge)
    assert firewall.existing_chains(str(box.root)) == []


def test_reset_removes_everything_the_records_know(box: Dockyard, tmp_path: Path) -> None:
    box("volume", "create", "kept")
    box("run", "-d", "--name", "vol", "-v", "kept:/data", "-v", "/anon", "box:1",
        "sleep", "300")
    box("create", "--name", "created", "--network", "none", "box:1", "true")
    bridge = _bridge(box, "bridge")
    assert _link(bridge)
    no = subprocess.run([*box.argv, "--root", str(box.root), "system", "reset"], input="n\n",
                        env=box.env, capture_output=True, text=True, check=False)
    assert no.returncode == 0 and "Are you sure you want to continue? [y/N]" in no.stderr
    assert len(box("ps", "-a", "-q").stdout.split()) == 2  # a "no" removes nothing
    yes = subprocess.run([*box.argv, "--root", str(box.root), "system", "reset"], input="y\n",
                         env=box.env, capture_output=True, text=True, check=False)
    assert yes.returncode == 0, yes.stderr
    assert not box.root.exists() and not _link(bridge) and _cgroups(box) == []
    assert box("images", "-q").stdout == "" and box("volume", "ls", "-q").stdout == ""
    assert box("ps", "-a", "-q").stdout == ""
    box("system", "reset", "-f")  # the listing above made an empty root again


def test_reset_refuses_a_directory_dockyard_did_not_make(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes").write_text("mine\n")
    for root in (home, home / "notes"):
        dy = Dockyard(root, tmp_path / "docker-config")
        refused = dy("system", "reset", "-f", check=False)
        assert refused.returncode == 1
        assert refused.stderr == (f"Error: --root {root} is not a dockyard root (no "
                                  "metadata.db in it): nothing removed\n")
    assert (home / "notes").read_text() == "mine\n"
