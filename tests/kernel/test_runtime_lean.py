"""The runtime's container-life commands, run for real, load none of the modules
they were taken off (bench/runtime_start.py: ~12 ms of each ``dockyard-runtime``
call): not ``typing``, ``re``, ``pathlib``, ``json``, ``threading``, ``contextlib``
or ``argparse``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.testing.bundles import BundleFactory, base_config
from dockyard.testing.imports import loaded_after

pytestmark = pytest.mark.root

HEAVY = ("typing", "re", "pathlib", "json", "threading", "argparse", "dataclasses", "contextlib",
         "subprocess")


def _commands(root: Path, argvs: list[list[str]]) -> str:
    calls = "".join(f"assert main({['--root', str(root), *argv]!r}) == 0\n" for argv in argvs)
    return f"from dockyard.runtime.cli import main\n{calls}"


def test_run_and_the_life_of_a_container_stay_lean(factory: BundleFactory,
                                                   tmp_path: Path) -> None:
    quick = str(factory.make(base_config(["true"])))
    root = tmp_path / "state"
    # run: create, start, wait and delete in one command
    assert loaded_after(_commands(root, [["run", "--bundle", quick, "lean-run"]]),
                        HEAVY, no_site=True) == []
    # the commands after create read no config: not the spec's types either.  (The
    # create is a process of its own, its stdio away from the probes' pipes: a created
    # init keeps what it was given until it execs.)
    later = (*HEAVY, "dockyard.oci.runtime_spec")
    bundle = str(factory.make(base_config(["sleep", "60"])))
    created = subprocess.run([sys.executable, "-c", _commands(root, [["create", "--bundle",
                                                                      bundle, "lean"]])],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, timeout=60, check=False)
    try:
        assert created.returncode == 0
        life = [["state", "lean"], ["start", "lean"], ["kill", "lean", "KILL"]]
        assert loaded_after(_commands(root, life), later, no_site=True) == []
    finally:  # killed (or never started): force takes it either way
        assert loaded_after(_commands(root, [["delete", "--force", "lean"]]),
                            later, no_site=True) == []
