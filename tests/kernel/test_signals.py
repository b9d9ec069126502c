"""Containers start with runc's signal state, whichever way they are started.

The engine's path is supervisor → runtime library (in a fork of the supervisor,
which ignores SIGHUP) → container init; exec and build RUN steps go through the
``dockyard-runtime`` CLI, a Python process that ignores SIGPIPE and SIGXFSZ.
Ignored dispositions survive execve, so each path must reset them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

PROBE = "grep -E '^Sig(Blk|Ign|Cgt):' /proc/self/status; yes | head -n1"
CLEAN = ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16, "SigCgt:", "0" * 16, "y"]


def test_run_starts_with_default_dispositions(box: Dockyard) -> None:
    result = box("run", "--rm", "box:1", "sh", "-c", PROBE)
    assert result.stdout.split() == CLEAN
    assert result.stderr == ""


def test_detached_run_and_exec_start_with_default_dispositions(box: Dockyard) -> None:
    box("run", "-d", "--name", "sig", "box:1", "sh", "-c", f"{PROBE}; sleep 300")
    result = box("exec", "sig", "sh", "-c", PROBE)
    assert result.stdout.split() == CLEAN
    assert result.stderr == ""
    box("stop", "-t", "0", "sig")
    logs = box("logs", "sig")
    assert logs.stdout.split() == CLEAN and logs.stderr == ""


def test_build_run_step_starts_with_default_dispositions(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM box:1\nRUN ({PROBE}) > /signals 2>&1\n")
    out = tmp_path / "out"
    box("build", "-q", "-o", f"type=local,dest={out}", str(context))
    assert (out / "signals").read_text().split() == CLEAN
