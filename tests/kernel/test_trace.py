"""``DOCKYARD_TRACE=1``: one command's timeline across its processes, on stderr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dockyard.testing.bundles import BundleFactory, Runtime, base_config
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root
# a timeline's line: offset, +ms, cpu ms (or -), role, pid, phase
ROW = re.compile(r"\s*([\d.]+)\s+([\d.]+)\s+([\d.]+|-)\s+(\w+) (\d+)\s+(.*)")


def test_a_run_prints_its_timeline_across_processes(box: Dockyard) -> None:
    result = box("run", "--rm", "--network", "none", "box:1", "echo", "out",
                 env={"DOCKYARD_TRACE": "1"})
    assert result.stdout == "out\n"  # the timeline goes to stderr only
    lines = result.stderr.splitlines()
    assert lines[0].split() == ["at", "ms", "+ms", "cpu", "ms", "process", "phase"]
    rows = [ROW.match(line) for line in lines[1:]]
    assert all(rows), lines
    offsets = [float(row.group(1)) for row in rows if row]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    roles = {row.group(4) for row in rows if row}
    phases = [row.group(6) for row in rows if row]
    # each phase with the CPU its process spent on it; some spent some
    assert all(row.group(3) != "-" for row in rows if row), lines
    assert sum(float(row.group(3)) for row in rows if row) > 0, lines
    assert {"cli", "supervisor"} <= roles, roles
    # (the CLI answers once the container is gone: the supervisor's own end, and its
    # "exit hook done", may come after the CLI printed the timeline)
    for phase in ("interpreter up", "runtime: init ready", "container exited (0)",
                  "runtime delete done", "cleanup: record removed", "removed", "exit"):
        assert phase in phases, phases
    assert phases.index("runtime: init ready") < phases.index("container exited (0)") < \
        phases.index("runtime delete done") < phases.index("cleanup: record removed") < \
        phases.index("removed")


def _pid_by_phase(stderr: str) -> dict[str, str]:
    rows = [ROW.match(line) for line in stderr.splitlines()[1:]]
    return {row.group(6): row.group(5) for row in rows if row}


@pytest.mark.parametrize("network", ["bridge", "none"])
def test_the_interfaces_are_made_by_the_create_helper_not_the_supervisor(
        box: Dockyard, network: str) -> None:
    """What the attach writes of the pages a supervisor shares with its zygote (~1 MiB
    of reference counts) goes away with the runtime's create helper: the veth pair,
    its address and ``lo`` are made there, not in the supervisor.  On none, ``lo`` is
    set up by the init that makes the namespace (``runtime.linux.network``), and the
    helper attaches nothing."""
    result = box("run", "--rm", "--network", network, "box:1", "true",
                 env={"DOCKYARD_TRACE": "1"})
    pids = _pid_by_phase(result.stderr)
    helper, supervisor = pids["runtime: init forked"], pids["forked"]
    assert helper != supervisor, result.stderr
    if network == "bridge":
        assert pids["attach: veth pair made"] == helper, result.stderr
        assert pids["attach: address and route set"] == helper, result.stderr
    else:
        assert pids["init: loopback up"] == pids["init: namespaces made"], result.stderr
        assert "attach: loopback up" not in pids, result.stderr
    assert pids["network connected"] == supervisor, result.stderr  # ports, DNS: its own


def test_a_foreground_run_rm_and_an_rm_f_do_the_exit_hooks_work_themselves(
        box: Dockyard) -> None:
    """They wait for it anyway, their engine open: the supervisor lets them take it over
    (``supervise.iohub``: ``attach exit hook``, ``exit hook``) instead of forking its
    hook, which would open an engine and database of its own."""
    result = box("run", "--rm", "--network", "none", "box:1", "true",
                 env={"DOCKYARD_TRACE": "1"})
    pids = _pid_by_phase(result.stderr)
    assert pids["cleanup: record removed"] == pids["image resolved"], result.stderr
    assert "exit hook: forked" not in pids, result.stderr
    name = f"taken-{uuid.uuid4().hex[:8]}"
    box("run", "-d", "--name", name, "box:1", "sleep", "60")
    removed = box("rm", "-f", name, env={"DOCKYARD_TRACE": "1"})
    pids = _pid_by_phase(removed.stderr)
    assert pids["cleanup: record removed"] == pids["rm: killed"], removed.stderr
    assert "exit hook: forked" not in pids, removed.stderr
    assert box("ps", "-aq", "--filter", f"name={name}").stdout == ""


def test_untraced_commands_print_no_timeline(box: Dockyard) -> None:
    result = box("run", "--rm", "--network", "none", "box:1", "true",
                 env={"DOCKYARD_TRACE": "0"})
    assert result.stderr == ""
    assert box("ps", env={"DOCKYARD_TRACE": ""}).stderr == ""


def test_the_runtime_alone_prints_its_timeline(dockyard: Runtime, factory: BundleFactory
                                               ) -> None:
    """``DOCKYARD_TRACE=1 dockyard-runtime run``: the runtime's and its init's phases."""
    bundle = factory.make(base_config(["/bin/true"]))
    result = dockyard.call("run", "--bundle", str(bundle), f"trace-{uuid.uuid4().hex[:8]}",
                           stdin=subprocess.DEVNULL, env={**os.environ, "DOCKYARD_TRACE": "1"})
    assert result.returncode == 0, result.stderr
    phases = [line.split(None, 5)[-1] for line in result.stderr.splitlines()[1:]]
    expected = ["interpreter up", "arguments parsed", "runtime: init forked",
                "init: cgroup joined", "runtime: init ready", "created", "started",
                "container exited", "deleted", "exit"]
    assert [phase for phase in phases if phase in expected] == expected, phases


# What the hot commands must not import: each costs 1-10 ms of every call (measured
# with -X importtime); the fast path exists so that they are not paid.
NOT_ON_THE_FAST_PATH = ("click", "rich", "pyroute2", "httpx", "aiohttp", "yaml", "tarfile",
                        "uuid", "random", "subprocess", "dockyard.cli.main")


# What a command handed to the zygote (``cli.warm``) imports beside: none of the engine
NOT_IN_A_WARM_CALLER = ("dockyard.cli.fast", "dockyard.engine", "dockyard.store",
                        "dockyard.store.layout", "sqlite3", "json", "hashlib", "pathlib",
                        "socket", "signal", "typing", "contextlib", "enum", "selectors",
                        "array", "collections")


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "fast"])
@pytest.mark.parametrize("args", [
    ("run", "--rm", "--network", "none", "box:1", "true"),
    ("ps", "-a"), ("images",), ("inspect", "box:1")], ids=lambda args: args[0])
def test_hot_commands_import_nothing_they_do_not_use(box: Dockyard, args: tuple[str, ...],
                                                     warm: bool) -> None:
    """Warm, as a user's machine is: the image's layers unpacked, and the zygote up
    (here it lingers for no one: a container keeps it).  With the warm path the
    caller only connects to the zygote; without it (``DOCKYARD_WARM_CLI=0``), the
    fast path runs the command here."""
    box("run", "-d", "--network", "none", "box:1", "sleep", "60")
    result = box(*args, env={"PYTHONPROFILEIMPORTTIME": "1",
                             "DOCKYARD_WARM_CLI": "1" if warm else "0"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    if warm:
        assert "dockyard.cli.warm" in imported  # the measurement itself works
        # (what the interpreter's start imports, e.g. an editable install's finder)
        started = subprocess.run([sys.executable, "-c", "pass"], capture_output=True,
                                 text=True, env={**box.env, "PYTHONPROFILEIMPORTTIME": "1"},
                                 check=True).stderr
        imported -= {line.rsplit("|", 1)[-1].strip() for line in started.splitlines()}
        assert sorted(set(NOT_ON_THE_FAST_PATH + NOT_IN_A_WARM_CALLER) & imported) == []
        return
    assert "dockyard.cli.fast" in imported
    assert sorted(set(NOT_ON_THE_FAST_PATH) & imported) == []


def test_a_containers_life_commands_run_without_click(box: Dockyard) -> None:
    """``start``, ``stop``, ``restart`` and ``kill`` are the fast path's too (they went to
    click: ~20 ms of each), here run by it in the caller (``DOCKYARD_WARM_CLI=0``)."""
    box("run", "-d", "--network", "none", "box:1", "sleep", "60")  # (the zygote kept up,
    box("create", "--name", "life", "--network", "none", "box:1", "sleep", "60")  # warm)
    env = {"PYTHONPROFILEIMPORTTIME": "1", "DOCKYARD_WARM_CLI": "0"}
    for args in (("start", "life"), ("restart", "-t", "0", "life"),
                 ("kill", "-s", "KILL", "life"), ("start", "life"), ("stop", "-t", "0", "life")):
        result = box(*args, env=env)
        assert result.stdout == "life\n", args
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "dockyard.cli.fast" in imported, args
        assert sorted(set(NOT_ON_THE_FAST_PATH) & imported) == [], args
    assert box("inspect", "-f", "{{.State.Status}}", "life").stdout.strip() == "exited"


# What a build that pulls nothing must not import: click (its flags are read from the
# same rows by the fast path), and the registry's client behind the signature policy
# (httpx, rich, yaml: ~70 ms), loaded only when a FROM is pulled
NOT_IN_A_LOCAL_BUILD = ("click", "dockyard.cli.main", "httpx", "rich", "yaml",
                        "dockyard.registry.client", "dockyard.registry.trust.policy")


@pytest.mark.parametrize("cached", [False, True], ids=["built", "cached"])
def test_a_build_from_a_local_image_imports_no_click_nor_registry(box: Dockyard,
                                                                  tmp_path: Path,
                                                                  cached: bool) -> None:
    (tmp_path / "Dockerfile").write_text("FROM box:1\nENV A=1\nCOPY Dockerfile /d\n"
                                         "RUN cat /d > /copy\n")
    if cached:
        box("build", "-q", "-t", "local:1", str(tmp_path))
    result = box("build", "-q", "-t", "local:1", str(tmp_path),
                 env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "dockyard.cli.build_cmds" in imported  # the measurement itself works
    assert sorted(set(NOT_IN_A_LOCAL_BUILD) & imported) == []
    assert result.stdout.startswith("sha256:")
