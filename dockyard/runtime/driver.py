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
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError
from dockyard.runtime import operations
from dockyard.runtime.bundle import load_bundle
from dockyard.runtime.create import CreateOptions, create
from dockyard.supervise.driver import Stdio


def _in_helper(work: Callable[[], int]) -> int:
    """Run ``work`` in a forked child; its int result or its error comes back here."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        answer: dict[str, object]
        try:
            answer = {"value": work()}
        except DockyardError as exc:
            answer = {"error": exc.message}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_fd, json.dumps(answer).encode() + b"\n")
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        # one line, not "until EOF": the init the helper forks keeps a copy of the pipe
        data = pipe.readline()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data or b'{"error": "runtime helper died"}')
    if "error" in result:
        raise RuntimeError(str(result["error"]))
    return int(result["value"])


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

        return _in_helper(work)

    def start(self, container_id: str) -> None:
        try:
            _in_helper(lambda: _started(self.root, container_id))
        except RuntimeError:
            self.delete(container_id)
            raise

    def delete(self, container_id: str) -> None:
        def work() -> int:
            with contextlib.suppress(DockyardError):
                operations.delete(self.root, container_id, force=True)
            return 0

        with contextlib.suppress(RuntimeError):
            _in_helper(work)

    def exec_argv(self, container_id: str) -> list[str]:
        return [*self.runtime, "--root", str(self.root), "exec", container_id]


Driver = BuiltinDriver
