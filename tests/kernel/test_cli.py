"""The ``dockyard`` CLI as a user types it: --root, errors without tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.runtime.spec import default_spec
from dockyard.testing.bundles import BundleFactory

pytestmark = pytest.mark.root


def dockyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).with_name("dockyard")
    argv = [str(beside)] if beside.exists() else [sys.executable, "-m", "dockyard.cli.main"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False, stdin=subprocess.DEVNULL)


def test_root_option_and_env(tmp_path: Path) -> None:
    result = dockyard("--root", str(tmp_path / "a"), "info")
    assert f"Root Dir: {tmp_path / 'a'}" in result.stdout
    assert f"Run Dir: {tmp_path / 'a' / 'run'}" in result.stdout
    env = dict(os.environ, DOCKYARD_ROOT=str(tmp_path / "b"))
    assert f"Root Dir: {tmp_path / 'b'}" in dockyard("info", env=env).stdout


def test_run_bundle_passes_output_and_exit_code(tmp_path: Path,
                                                factory: BundleFactory) -> None:
    config = default_spec(("sh", "-c", "echo hi from $(hostname); exit 5"), terminal=False)
    config["linux"]["cgroupsPath"] = "/dockyard-test-cli"
    bundle = factory.make(config)
    result = dockyard("--root", str(tmp_path / "root"), "run-bundle", "--name", "c1",
                      str(bundle))
    assert result.stdout == "hi from dockyard\n", result.stderr
    assert result.returncode == 5
    assert not list((tmp_path / "root" / "run" / "runtime").iterdir())


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = dockyard("--root", str(tmp_path / "root"), "run-bundle", str(tmp_path / "none"))
    assert result.returncode == 125
    assert result.stderr.startswith("Error: JSON specification file")
    assert "Traceback" not in result.stderr


def test_missing_command_exits_127(tmp_path: Path, factory: BundleFactory) -> None:
    config = default_spec(("no-such-command",), terminal=False, seccomp=False)
    config["linux"]["cgroupsPath"] = "/dockyard-test-cli127"
    result = dockyard("--root", str(tmp_path / "root"), "run-bundle", str(factory.make(config)))
    assert result.returncode == 127
    assert 'executable file not found in $PATH' in result.stderr


def test_runtime_spec_writes_docker_defaults(tmp_path: Path) -> None:
    runtime = shutil.which("dockyard-runtime") or str(
        Path(sys.executable).with_name("dockyard-runtime"))
    subprocess.run([runtime, "spec", "--bundle", str(tmp_path)], check=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert "CAP_NET_RAW" in config["process"]["capabilities"]["bounding"]
    assert config["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    again = subprocess.run([runtime, "spec", "--bundle", str(tmp_path)], capture_output=True,
                           text=True, check=False)
    assert again.returncode != 0 and "exists" in again.stderr
