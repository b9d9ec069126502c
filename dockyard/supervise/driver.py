"""How a supervisor talks to the OCI runtime: a small Protocol and its CLI implementation.

``CliDriver`` runs any runc-compatible binary (runc, dockyard-runtime), as conmon
does.  Faster drivers can be injected by name (``--driver MODULE``; the engine, as
composition root, picks one), e.g. ``dockyard.runtime.driver``, which calls the
runtime library in-process and saves three interpreter starts per container.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard.supervise.helper import run_in_fork

AfterCreate = Callable[[int], None]  # given the init's pid


class Stdio(Protocol):
    child_in: int
    child_out: int
    child_err: int
    console_path: str


class RuntimeDriver(Protocol):
    # whether its runtime sets lo up in a new network namespace itself, as the config
    # asks (``runtime.linux.network``): then ``--network none`` has nothing to attach
    sets_loopback_up: bool

    def create(self, container_id: str, bundle: Path, stdio: Stdio,
               after_create: AfterCreate | None = None) -> int:
        """Create the container; returns its init's pid; raises RuntimeError(message).
        ``after_create(pid)`` runs once the init exists, in a throw-away process when the
        driver has one (the network attach: its pages are not the supervisor's to keep);
        if it raises, the container is deleted and the create fails."""

    def start(self, container_id: str) -> None: ...

    def delete(self, container_id: str) -> None:
        """Forcefully, and quietly if there is nothing to delete."""

    def delete_last(self, container_id: str) -> None:
        """``delete``, called in a process that ends right after (the supervisor of a
        container that is done, beside its exit hook): no helper needs to keep this
        one's memory as it was."""

    def exec_argv(self, container_id: str) -> list[str]:
        """Prefix of a command line that runs a process in the container (healthchecks)."""


class CliDriver:
    sets_loopback_up = False  # (runc does not; dockyard-runtime would: done twice, then)

    def __init__(self, runtime: list[str], root: str) -> None:
        self.runtime = runtime
        self.root = root

    def _call(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.runtime, "--root", self.root, *args], check=False,
                              capture_output=True, stdin=subprocess.DEVNULL)

    def create(self, container_id: str, bundle: Path, stdio: Stdio,
               after_create: AfterCreate | None = None) -> int:
        if os.path.exists(os.path.join(self.root, container_id)):  # left by a crash
            self.delete(container_id)
        pid_file = bundle / "init.pid"
        argv = [*self.runtime, "--root", self.root, "--log", str(bundle / "runtime.log"),
                "--log-format", "json", "create", "--bundle", str(bundle), "--pid-file",
                str(pid_file)]
        if stdio.console_path:
            argv += ["--console-socket", stdio.console_path]
        created = subprocess.run([*argv, container_id], stdin=stdio.child_in,
                                 stdout=stdio.child_out, stderr=stdio.child_err, check=False)
        if created.returncode != 0:
            raise RuntimeError(_last_error(bundle / "runtime.log"))
        pid = int(pid_file.read_text())
        if after_create is not None:
            def work() -> int:
                after_create(pid)
                return 0

            try:
                run_in_fork(work)
            except RuntimeError:
                self.delete(container_id)
                raise
        return pid

    def start(self, container_id: str) -> None:
        started = self._call("start", container_id)
        if started.returncode != 0:
            self.delete(container_id)
            raise RuntimeError(started.stderr.decode(errors="replace").strip())

    def delete(self, container_id: str) -> None:
        self._call("delete", "--force", container_id)

    delete_last = delete

    def exec_argv(self, container_id: str) -> list[str]:
        return [*self.runtime, "--root", self.root, "exec", container_id]


def _last_error(log: Path) -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in reversed(log.read_text().splitlines()):
            entry = json.loads(line)
            if entry.get("level") == "error":
                return str(entry.get("msg", ""))
    return "the runtime failed to create the container"
