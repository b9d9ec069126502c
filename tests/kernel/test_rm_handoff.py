"""``rm -f`` of a running container: the CLI kills the init and removes the container as
its supervisor's exit hook would, once the supervisor let it take the hook's work over
(else the hook, a warm fork, does, as for ``--rm``, waited for); the CLI finishes the
removal itself if neither could."""

from __future__ import annotations

import json
import re

import pytest

from dockyard.engine.containers import REMOVE_MARKER
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


def _timeline(stderr: str) -> list[tuple[str, str]]:
    """(role, phase) rows of a ``DOCKYARD_TRACE=1`` timeline."""
    rows = [re.match(r"\s*[\d.]+\s+[\d.]+\s+(?:[\d.]+|-)\s+(\w+) \d+\s+(.*)", line)
            for line in stderr.splitlines()[1:]]
    return [(row.group(1), row.group(2)) for row in rows if row]


@pytest.mark.parametrize("taken", [True, False], ids=["taken-over", "by-the-hook"])
def test_the_container_rm_f_kills_is_removed_as_by_its_exit_hook(box: Dockyard,
                                                                 taken: bool) -> None:
    """The rm takes the exit hook's work over on the container's attach socket
    (``supervise.iohub``); with no socket to ask on (taken away here), the
    supervisor's hook does it, and the rm waits for that."""
    container_id = box("run", "-d", "--network", "none", "box:1", "sleep", "60").stdout.strip()
    if not taken:
        (box.root / "containers" / container_id / "attach.sock").unlink()
    result = box("rm", "-f", container_id, env={"DOCKYARD_TRACE": "1"})
    assert result.stdout == container_id + "\n"
    rows = _timeline(result.stderr)
    # the traced rm handed its trace to the supervisor (and its hook)
    order = [("supervisor", "container exited (137)"), ("cli", "cleanup: record removed")] \
        if taken else [("supervisor", "container exited (137)"),
                       ("supervisor", "cleanup: record removed"), ("cli", "rm: supervisor done")]
    assert [row for row in rows if row in order] == order, rows
    assert ("supervisor", "exit hook: forked") not in rows or not taken, rows
    assert container_id not in box("ps", "-a", "-q", "--no-trunc").stdout.split()
    assert not (box.root / "containers" / container_id).exists()
    assert box("system", "check").returncode == 0


@pytest.mark.parametrize("volumes", [False, True], ids=["rm-f", "rm-f-v"])
def test_anonymous_volumes_go_only_with_v(box: Dockyard, volumes: bool) -> None:
    container_id = box("run", "-d", "--network", "none", "-v", "/cache", "box:1",
                       "sleep", "60").stdout.strip()
    volume = json.loads(box("container", "inspect", container_id).stdout)[0]["Mounts"][0]["Name"]
    box("rm", "-f", *(["-v"] if volumes else []), container_id)
    assert container_id not in box("ps", "-a", "-q", "--no-trunc").stdout.split()
    assert (volume in box("volume", "ls", "-q").stdout.split()) is not volumes


def test_a_start_forgets_an_old_removal_request(box: Dockyard) -> None:
    """A request no hook carried out (the rm was killed before its signal) does not
    remove the container at its next exit after a start."""
    box("create", "--name", "kept", "--network", "none", "box:1", "true")
    container_id = box("container", "inspect", "-f", "{{.Id}}", "kept").stdout.strip()
    (box.root / "containers" / container_id / REMOVE_MARKER).write_text("")
    box("start", "kept")
    assert box("wait", "kept").stdout.strip() == "0"
    assert box("container", "inspect", "-f", "{{.State.Status}}", "kept").stdout.strip() == \
        "exited"


def test_rm_f_of_several_kills_them_all_before_it_waits(box: Dockyard) -> None:
    """Their hooks remove them side by side; a name that is no container is reported
    in its turn, and the exit code says one failed (Docker's)."""
    ids = [box("run", "-d", "--network", "none", "box:1", "sleep", "60").stdout.strip()
           for _ in range(3)]
    result = box("rm", "-f", ids[0], "no-such-box", *ids[1:], check=False,
                 env={"DOCKYARD_TRACE": "1"})
    assert result.returncode == 1
    assert result.stdout.split() == ids
    assert "Error: No such container: no-such-box" in result.stderr
    phases = [phase for role, phase in _timeline(result.stderr) if role == "cli"]
    assert phases.count("rm: killed") == 3, phases
    assert phases.index("rm: supervisor done") > max(
        i for i, phase in enumerate(phases) if phase == "rm: killed"), phases
    left = box("ps", "-a", "-q", "--no-trunc").stdout.split()
    assert not set(ids) & set(left)
    assert box("system", "check").returncode == 0
