"""The engines the start-path benches drive as whole processes, side by side: dockyard on
a throw-away root, and docker against a private dockerd (its own bridge, made and removed
here) or one the caller names.  Each engine remembers every container it made, and
``engines()`` removes them (and everything else it made) on the way out, even when
interrupted.

Not a bench itself: ``run_latency.py`` and ``density.py`` import it (``bench/`` is on
``sys.path`` when they are run as scripts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.testing import dockerd
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import scratch_root

# A PID 1 that honours SIGTERM (busybox sh traps it), so ``stop`` times the engine and
# not the 10 s grace period a bare ``sleep`` as PID 1 would wait out.
STOPPABLE = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")
COMMAND_TIMEOUT = 120.0


class CommandFailed(RuntimeError):
    pass


@dataclass
class Engine:
    """A container engine CLI: ``argv`` is its command prefix (with its root/host)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    image: str
    made: set[str] = field(default_factory=set)

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def timed(self, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
        """Run one command as a whole process; (wall seconds, stdout).  Fails loudly."""
        argv = self.cmd(*args)
        start = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              env=env or self.env, timeout=COMMAND_TIMEOUT, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}: "
                                f"{proc.stderr.decode(errors='replace')[-2000:]}")
        return elapsed, proc.stdout.decode(errors="replace")

    def new_container(self, *args: str) -> tuple[float, str]:
        """``run -d``/``create`` something; remember its id for the clean-up."""
        elapsed, out = self.timed(*args)
        container_id = out.strip().splitlines()[-1]
        self.made.add(container_id)
        return elapsed, container_id

    def remove(self, *ids: str) -> tuple[float, str]:
        elapsed, out = self.timed("rm", "-f", *ids)
        self.made.difference_update(ids)
        return elapsed, out

    def remove_all(self) -> None:
        """Every container of this engine's private store (clean-up path)."""
        ids = subprocess.run(self.cmd("ps", "-a", "-q", "--no-trunc"), env=self.env,
                             capture_output=True, text=True, timeout=120, check=False).stdout
        self.made.update(ids.split())
        self.remove_made()

    def remove_made(self) -> None:
        """Best effort (clean-up path): every container this engine made."""
        if self.made:
            subprocess.run(self.cmd("rm", "-f", *sorted(self.made)), env=self.env,
                           capture_output=True, timeout=600, check=False)
            self.made.clear()


def dockyard_engine(root: Path, docker_config: Path, tag: str) -> Engine:
    binary = Path(sys.executable).with_name("dockyard")
    if not binary.exists():
        raise RuntimeError(f"{binary} not found: run with the python of a dockyard venv")
    env = dict(os.environ, DOCKER_CONFIG=str(docker_config))
    return Engine("dockyard", [str(binary), "--root", str(root)], env, tag)


@dataclass
class Peers:
    work: Path
    root: Path  # dockyard's
    tar: Path
    dockyard: Engine
    docker: Engine | None
    daemon: dockerd.Daemon | None  # the private dockerd, when one was started here


def exit_on_signals() -> None:
    """SIGTERM, and SIGINT even where a shell started the bench with it ignored, end it
    through its clean-up (KeyboardInterrupt unwinds every ``finally``)."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


@contextlib.contextmanager
def engines(prefix: str, docker: str = "private") -> Iterator[Peers]:
    """dockyard on a scratch root and (``docker``: ``"private"``, ``"none"`` or a
    ``unix://`` host) docker, both with a busybox image imported under one unique tag.
    Everything made is removed on the way out: containers, the image in a foreign
    dockerd, the private dockerd with its bridge, the root, its mounts."""
    tag = f"dybench-{uuid.uuid4().hex[:8]}:1"
    with scratch_root(prefix) as (work, cli), contextlib.ExitStack() as stack:
        ours = dockyard_engine(cli.root, work / "docker-config", tag)
        stack.callback(ours.remove_made)
        tar = make_rootfs_tar(work)
        ours.timed("import", str(tar), tag)
        daemon = None
        theirs = None
        if docker == "private" and dockerd.available():
            daemon = stack.enter_context(dockerd.running_dockerd())
            host = daemon.host
        elif docker not in ("private", "none"):
            host = docker
        else:
            host = ""
        if host:
            assert dockerd.DOCKER is not None or shutil.which("docker")
            theirs = Engine("docker", [dockerd.DOCKER or "docker"],
                            dict(os.environ, DOCKER_HOST=host), tag)
            theirs.timed("import", str(tar), tag)
            if daemon is None:  # a foreign daemon: take our tag back out of it
                stack.callback(subprocess.run, theirs.cmd("rmi", "-f", tag), env=theirs.env,
                               capture_output=True, check=False)
                stack.callback(theirs.remove_made)
            else:  # ours alone: also what an interrupted `run -d` made before its id came
                stack.callback(theirs.remove_all)
        yield Peers(work, cli.root, tar, ours, theirs, daemon)


def print_traces(dockyard: Engine, networks: tuple[str, ...] = ("none", "bridge")) -> None:
    """The ``DOCKYARD_TRACE=1`` timeline (stderr) of one ``run --rm`` per network, each
    after one untimed run (a fresh root's first start is not the one users repeat)."""
    env = dict(dockyard.env, DOCKYARD_TRACE="1")
    for network in networks:
        dockyard.timed("run", "--rm", "--network", network, dockyard.image, "/bin/true")
        proc = subprocess.run(dockyard.cmd("run", "--rm", "--network", network,
                                           dockyard.image, "/bin/true"),
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        print(f"\nDOCKYARD_TRACE=1 dockyard run --rm --network {network} IMG /bin/true "
              f"(exit {proc.returncode}; after one warm-up run):")
        print(proc.stderr.rstrip() or "(no timeline on stderr)")
