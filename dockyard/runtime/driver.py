"""The runtime library as a supervisor's driver (see ``supervise.driver``): create,
start and delete without starting another interpreter.

Each call runs in a short-lived fork of the supervisor: the runtime code it runs
touches (and so un-shares) memory pages the supervisor has in common with its
zygote and siblings, and those pages go away with the helper.  The start of a
container the driver just created is the exception: releasing its init opens a
fifo and reads one byte, which touches next to nothing, where a fork cost ~2.5 ms.  The container's
init, forked by the helper, is orphaned when the helper exits and re-parented to
the supervisor, which is a child subreaper.  ``create`` gives the init the caller's
fds 0-2, so the helper points them at the container's stdio first.

A create helper dies with its supervisor, and takes what it made with it: with the
supervisor gone, nothing would ever start, watch or delete a created init (it waits
on its exec fifo for good, in its cgroup, its runtime state saved after whoever
gave up on the supervisor looked for it).  The helper asks for SIGTERM at its
parent's death (PR_SET_PDEATHSIG, then getppid, since the parent may be gone
already), which interrupts the create and so undoes it (never between a step and
the registration of its undo: see ``runtime.interrupts``); after the create it looks
once more (the state is saved by then: a supervisor that dies later dies after the
save, so whoever notices the death finds the state) and deletes what it made if
the supervisor is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from dockyard.errors import DockyardError
from dockyard.runtime import interrupts, operations
from dockyard.runtime.bundle import load_bundle
from dockyard.runtime.create import CreateOptions, create
from dockyard.runtime.linux import syscalls as sc
from dockyard.runtime.state import ContainerRecord
from dockyard.supervise.driver import AfterCreate, Stdio
from dockyard.supervise.helper import run_in_fork


class SupervisorGone(BaseException):
    """The create helper's supervisor died (a BaseException: nothing may swallow it
    on its way out of the create, whose undo steps run as it passes)."""


def _supervisor_died(_sig: int, _frame: FrameType | None) -> None:
    interrupts.interrupt(SupervisorGone())  # never between a step and its undo


@contextlib.contextmanager
def _dying_with(supervisor: int) -> Iterator[None]:
    """Within the block, the death of ``supervisor`` (our parent) raises
    ``SupervisorGone``; past it, the signal is ignored."""
    signal.signal(signal.SIGTERM, _supervisor_died)
    try:
        sc.set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != supervisor:  # died before we asked
            raise SupervisorGone
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _started(root: Path, container_id: str) -> int:
    operations.start(root, container_id)
    return 0


def _may_have_poststart_hooks(bundle: Path) -> bool:
    """Whether the bundle's config may name poststart hooks: its bytes searched, not
    parsed (a key that is not there cannot be a hook; any mention of one, even in a
    string, says "maybe", and the start takes the full path)."""
    try:
        return b'"poststart"' in (bundle / "config.json").read_bytes()
    except OSError:
        return True


class BuiltinDriver:
    sets_loopback_up = True  # (its init does, as the engine's config asks)

    def __init__(self, runtime: list[str], root: str) -> None:
        self.runtime = runtime  # the CLI form, for exec (healthchecks)
        self.root = Path(root)
        self._created: dict[str, tuple[int, Path]] = {}  # id -> its init, its bundle

    def create(self, container_id: str, bundle: Path, stdio: Stdio,
               after_create: AfterCreate | None = None) -> int:
        supervisor = os.getpid()

        def work() -> int:
            with contextlib.suppress(DockyardError):
                if (self.root / container_id).exists():  # left by a crash
                    operations.delete(self.root, container_id, force=True)
            for fd, target in ((0, stdio.child_in), (1, stdio.child_out),
                               (2, stdio.child_err)):
                if target < 0:
                    target = os.open(os.devnull, os.O_RDWR)
                os.dup2(target, fd)
            record: ContainerRecord | None = None
            with contextlib.suppress(SupervisorGone), _dying_with(supervisor):
                record = create(self.root, container_id, load_bundle(str(bundle)),
                                CreateOptions(console_socket=stdio.console_path or None))
            if record is None or os.getppid() != supervisor:
                self._undo_create(container_id)
                raise RuntimeError("the supervisor died while the container was created")
            if after_create is not None:  # here: what it touches goes with this fork
                try:
                    after_create(record.pid)
                except BaseException:
                    self._undo_create(container_id)
                    raise
                if os.getppid() != supervisor:  # (killed meanwhile: as above)
                    self._undo_create(container_id)
                    raise RuntimeError("the supervisor died while the container was "
                                       "connected")
            return record.pid

        pid = run_in_fork(work)
        self._created[container_id] = (pid, bundle)
        return pid

    def _undo_create(self, container_id: str) -> None:
        """What a create interrupted by its supervisor's death left: nothing (its undo
        ran) or, once the state was saved, a created init (ours, not yet reaped)."""
        with contextlib.suppress(DockyardError):
            if (self.root / container_id).exists():
                operations.delete(self.root, container_id, force=True)

    def start(self, container_id: str) -> None:
        """The init we just created is released here, in this process: a fork for it
        cost ~2.5 ms of every start, and the release reads nothing (``start_created``).
        Otherwise (a poststart hook, which needs the parsed record) in a fork."""
        pid, bundle = self._created.pop(container_id, (0, Path()))
        try:
            if pid and not _may_have_poststart_hooks(bundle):
                try:
                    operations.start_created(self.root, container_id, pid)
                except DockyardError as exc:
                    raise RuntimeError(exc.message) from None
                except OSError as exc:  # (the fifo gone, no descriptor left…)
                    raise RuntimeError(f"starting the container: {exc}") from None
            else:
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

    def delete_last(self, container_id: str) -> None:
        """In this process: it ends right after (no fork, no answer over a pipe: ~2 ms
        of the exit path of ``run --rm``, ``rm -f`` and ``stop``)."""
        with contextlib.suppress(DockyardError):
            operations.delete(self.root, container_id, force=True)

    def exec_argv(self, container_id: str) -> list[str]:
        return [*self.runtime, "--root", str(self.root), "exec", container_id]


Driver = BuiltinDriver
