"""``DOCKYARD_TRACE=1``: one command's timeline across its processes, on stderr."""

from __future__ import annotations

import re

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


def test_a_run_prints_its_timeline_across_processes(box: Dockyard) -> None:
    result = box("run", "--rm", "--network", "none", "box:1", "echo", "out",
                 env={"DOCKYARD_TRACE": "1"})
    assert result.stdout == "out\n"  # the timeline goes to stderr only
    lines = result.stderr.splitlines()
    assert lines[0].split() == ["at", "ms", "+ms", "process", "phase"]
    rows = [re.match(r"\s*([\d.]+)\s+([\d.]+)\s+(\w+) (\d+)\s+(.*)", line) for line in lines[1:]]
    assert all(rows), lines
    offsets = [float(row.group(1)) for row in rows if row]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    roles = {row.group(3) for row in rows if row}
    phases = [row.group(5) for row in rows if row]
    assert {"cli", "supervisor"} <= roles, roles
    for phase in ("interpreter up", "runtime: init ready", "container exited (0)",
                  "exit hook done", "removed", "exit"):
        assert phase in phases, phases
    assert phases.index("runtime: init ready") < phases.index("container exited (0)") < \
        phases.index("exit hook done") < phases.index("removed")


def test_untraced_commands_print_no_timeline(box: Dockyard) -> None:
    result = box("run", "--rm", "--network", "none", "box:1", "true",
                 env={"DOCKYARD_TRACE": "0"})
    assert result.stderr == ""
    assert box("ps", env={"DOCKYARD_TRACE": ""}).stderr == ""
