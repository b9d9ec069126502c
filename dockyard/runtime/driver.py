"""The runtime library as a supervisor's driver (see ``supervise.driver``): create,
start and delete in-process, so a container start costs no extra interpreter.

The library's ``create`` gives the init the caller's fds 0-2, so they are pointed at
the container's stdio for the duration of the call and restored after.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.runtime import operations
from dockyard.runtime.bundle import load_bundle
from dockyard.runtime.create import CreateOptions, create
from dockyard.supervise.driver import Stdio


class BuiltinDriver:
    def __init__(self, runtime: list[str], root: str) -> None:
        self.runtime = runtime  # the CLI form, for exec (healthchecks)
        self.root = Path(root)

    def create(self, container_id: str, bundle: Path, stdio: Stdio) -> int:
        with contextlib.suppress(DockyardError):
            if (self.root / container_id).exists():  # left by a crash
                operations.delete(self.root, container_id, force=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd, target in ((0, stdio.child_in), (1, stdio.child_out),
                               (2, stdio.child_err)):
                if target >= 0:
                    os.dup2(target, fd)
                else:
                    null = os.open(os.devnull, os.O_RDWR)
                    os.dup2(null, fd)
                    os.close(null)
            record = create(self.root, container_id, load_bundle(str(bundle)),
                            CreateOptions(console_socket=stdio.console_path or None))
            return record.pid
        except DockyardError as exc:
            raise RuntimeError(exc.message) from exc
        finally:
            for fd, copy in zip((0, 1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)

    def start(self, container_id: str) -> None:
        try:
            operations.start(self.root, container_id)
        except DockyardError as exc:
            self.delete(container_id)
            raise RuntimeError(exc.message) from exc

    def delete(self, container_id: str) -> None:
        with contextlib.suppress(DockyardError):
            operations.delete(self.root, container_id, force=True)

    def exec_argv(self, container_id: str) -> list[str]:
        return [*self.runtime, "--root", str(self.root), "exec", container_id]


Driver = BuiltinDriver
