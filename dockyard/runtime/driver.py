"""The runtime library as a supervisor's driver (see ``supervise.driver``): create,
start and delete without starting another interpreter.

Each call runs in a short-lived fork of the supervisor: the runtime code it runs
touches (and so un-shares) memory pages the supervisor has in common with its
zygote and siblings, and those pages go away with the helper.  The container's
init, forked by the helper, is orphaned when the helper exits and re-parented to
the supervisor, which is a child subreaper.  ``create`` gives the init the caller's
fds 0-2, so the helper points them at the container's stdio first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.runtime import operations
from dockyard.runtime.bundle import load_bundle
from dockyard.runtime.create import CreateOptions, create
from dockyard.supervise.driver import Stdio
from dockyard.supervise.helper import run_in_fork


def _started(root: Path, container_id: str) -> int:
    operations.start(root, container_id)
    return 0


class BuiltinDriver:
    def __init__(self, runtime: list[str], root: str) -> None:
        self.runtime = runtime  # the CLI form, for exec (healthchecks)
        self.root = Path(root)

    def create(self, container_id: str, bundle: Path, stdio: Stdio) -> int:
        def work() -> int:
            with contextlib.suppress(DockyardError):
                if (self.root / container_id).exists():  # left by a crash
                    operations.delete(self.root, container_id, force=True)
            for fd, target in ((0, stdio.child_in), (1, stdio.child_out),
                               (2, stdio.child_err)):
                if target < 0:
                    target = os.open(os.devnull, os.O_RDWR)
                os.dup2(target, fd)
            record = create(self.root, container_id, load_bundle(str(bundle)),
                            CreateOptions(console_socket=stdio.console_path or None))
            return record.pid

        return run_in_fork(work)

    def start(self, container_id: str) -> None:
        try:
            run_in_fork(lambda: _started(self.root, container_id))
        except RuntimeError:
            self.delete(container_id)
            raise

    def delete(self, container_id: str) -> None:
        def work() -> int:
            with contextlib.suppress(DockyardError):
                operations.delete(self.root, container_id, force=True)
            return 0

        with contextlib.suppress(RuntimeError):
            run_in_fork(work)

    def exec_argv(self, container_id: str) -> list[str]:
        return [*self.runtime, "--root", str(self.root), "exec", container_id]


Driver = BuiltinDriver
