"""The warm path's worker: a fork of the zygote's command parent that runs one command
for a ``dockyard`` process that handed it over (``cli.warm``).

Imported by the command parent (``supervise.command_parent``) before its first worker
forks, so the fast path, the hot commands, the engine and compose are loaded once
and shared by every worker; what a command imports beyond them (click, for the
commands the fast path leaves to it) it imports in its own fork.  The zygote itself
never loads these: its supervisors stay as small as before the warm path.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import select
import signal
import socket
import sqlite3
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

# and what those import on first use (``ps``'s commands, ``run``'s config and attach)
import dockyard.cli.attach  # noqa: F401
import dockyard.cli.compose_cmds  # noqa: F401

# loaded here so that the zygote holds them (see above)
import dockyard.cli.container_cmds  # noqa: F401
import dockyard.cli.container_flags  # noqa: F401
import dockyard.cli.errors  # noqa: F401
import dockyard.cli.fast  # noqa: F401
import dockyard.cli.image_cmds  # noqa: F401
import dockyard.compose.cache  # noqa: F401 - and what a no-op ``compose up`` reads
import dockyard.compose.converge  # noqa: F401
import dockyard.compose.files  # noqa: F401
import dockyard.compose.order  # noqa: F401
import dockyard.compose.plan  # noqa: F401
import dockyard.compose.resources  # noqa: F401
import dockyard.compose.sources  # noqa: F401
import dockyard.engine.attach_socket  # noqa: F401
import dockyard.engine.etcfiles  # noqa: F401
import dockyard.engine.inspect  # noqa: F401
import dockyard.engine.networks  # noqa: F401
import dockyard.engine.ocispec  # noqa: F401
import dockyard.engine.runtime_command  # noqa: F401
import dockyard.fs.inroot  # noqa: F401
import dockyard.images.users  # noqa: F401
import dockyard.runtime.seccomp_profile  # noqa: F401
import dockyard.runtime.spec  # noqa: F401
from dockyard import trace
from dockyard.cli import warm
from dockyard.compose import labels as compose_labels
from dockyard.engine.engine import Engine
from dockyard.errors import NotFound
from dockyard.store.db import Database, hold_wal_index
from dockyard.store.layout import Layout

# the hot commands' flags as a warm-up reads them (their tables, the parser)
_SAMPLE_ARGV = (("ps", "-a", "--no-trunc"), ("images", "-q"), ("inspect", "-f", "x", "x"),
                ("run", "-d", "--rm", "--name", "x", "-p", "80:80", "-e", "A=B", "-v",
                 "/a:/b", "--network", "none", "image", "command"), ("rm", "-f", "x"),
                ("start", "x"), ("stop", "-t", "1", "x"), ("kill", "-s", "TERM", "x"),
                ("exec", "-i", "x", "command"), ("compose", "-f", "x", "up", "-d"),
                ("compose", "down"))


def serve(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> NoReturn:
    """Become the command's process (its streams, working directory, environment,
    umask, arguments), run it, send its exit code on ``conn``; never returns."""
    code = 1
    try:
        conn.sendall(f"{os.getpid()}\n".encode())  # first: where to send signals
        _become(request, fds)
        _die_with_the_client(conn)
        trace.mark("warm: worker took the command over")
        code = _run([str(arg) for arg in request["argv"]])
    except BaseException as exc:  # noqa: BLE001 - a worker never returns to the zygote
        with contextlib.suppress(BaseException):
            sys.stderr.write(f"dockyard: {exc!r}\n")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"{code}\n".encode())
        os._exit(code)


def warm_up(run_dir: Path, interrupted: Callable[[], bool]) -> None:
    """In a spare worker (``supervise.command_parent``), before its command comes: the
    read paths of the hot commands run once, their output dropped — flags parsed, the
    containers and images listed as ``ps`` and ``images`` show them, one of each
    inspected, a compose project's containers and images looked up — so that the
    shared pages they write (CPython's reference counts) are copied now, not on the
    command's time.  Reads alone: the database is opened read-only and never made (the
    root may be being removed), and a dead supervisor is left for the command to
    notice.  Cut short when ``interrupted`` (a request came)."""
    from dockyard.cli import container_cmds, image_cmds
    from dockyard.cli.fast import read_flags

    layout = _layout(run_dir)
    if layout is None:
        return
    engine = Engine(layout)
    try:
        engine.db = Database.existing(layout.root / "metadata.db", "a warm-up writes nothing")
    except Exception:  # noqa: BLE001 - none (the root went), or unreadable: no warm-up
        return
    engine.containers.recovers = False
    records: list[Any] = []
    names: list[str] = []

    def containers() -> None:
        records.extend(engine.containers.list(all_containers=True))
        container_cmds.ps(engine, all_containers=True, quiet=False, no_trunc=False,
                          filters=(), fmt=None)

    def images() -> None:
        image_cmds.images(engine, all_images=False, quiet=False, digests=False,
                          no_trunc=False, filters=(), fmt=None)
        names.extend(f"{s.repository}:{s.tag}" for s in engine.images.summaries()
                     if s.tag != "<none>")

    def inspected() -> None:
        image_cmds.inspect(engine, *[r.id for r in records[:1]], *names[:1], fmt=None)
        for name in names[:1]:
            engine.images.get(name)

    def compose_reads() -> None:  # what a no-op ``compose up`` reads besides its plan
        engine.containers.list(all_containers=True, labels={compose_labels.PROJECT: "-"})
        engine.image_index.ids_of(names[:1] or ["-"])
        with contextlib.suppress(NotFound):  # (the project's networks: ensure_networks)
            engine.networks.get("-")

    steps: list[Callable[[], object]] = [
        lambda: [read_flags(argv) for argv in _SAMPLE_ARGV], containers, images, inspected,
        compose_reads]
    stdout, sys.stdout = sys.stdout, io.StringIO()
    try:
        for step in steps:
            if interrupted():
                return
            with contextlib.suppress(Exception):  # (one step failing warms less)
                step()
    finally:
        sys.stdout = stdout
        engine.db.close()


def _layout(run_dir: Path) -> Layout | None:
    """The layout of the root whose run dir is ``run_dir`` (None: no root's)."""
    layout = Layout.for_root(warm.DEFAULT_ROOT if str(run_dir) == warm.DEFAULT_RUN_DIR
                             else run_dir.parent)
    return layout if layout.run_dir == run_dir else None


def hold_store(run_dir: Path, nudges: socket.socket) -> None:
    """In the command parent's holder (``supervise.command_parent``): the root's
    database kept open (``store.db.hold_wal_index``: every other process's open then
    skips rebuilding the WAL index), looked at again on each nudge (one comes after
    each warm command: the root may have been made, removed or made anew since) and
    every second (``system reset`` is no warm command: a removed root's files are not
    kept open for long), until the command parent ends."""
    layout = _layout(run_dir)
    if layout is None:
        return
    path = layout.root / "metadata.db"
    held: tuple[sqlite3.Connection, tuple[int, int]] | None = None
    nudges.settimeout(1.0)
    while True:
        try:
            info = os.stat(path)
            now: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            now = None
        if held is not None and held[1] != now:
            held[0].close()
            held = None
        if held is None and now is not None:
            held = hold_wal_index(path)
        try:
            if not nudges.recv(64):
                return
        except (TimeoutError, InterruptedError):
            continue
        except OSError:
            return


def _become(request: dict[str, Any], fds: list[int]) -> None:
    stdin, stdout, stderr, cwd = fds
    os.fchdir(cwd)
    os.close(cwd)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)  # (dup2's copy is inheritable: a runtime child gets it)
        os.close(fd)
    # the zygote's streams were made for /dev/null: new ones, buffered as Python
    # makes them for these descriptors (stdout by line on a terminal, stderr by line)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own, for its life
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1,  # noqa: SIM115
                      closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace",  # noqa: SIM115
                      closefd=False)
    os.umask(int(request.get("umask", 0o022)))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
    sys.argv = ["dockyard", *map(str, request["argv"])]
    # not the zygote's `python -m` module: click names the program after __main__
    sys.modules["__main__"] = types.ModuleType("__main__")
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                   signal.SIGUSR2, signal.SIGWINCH, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    trace.restart("cli")


def _die_with_the_client(conn: socket.socket) -> None:
    """The client killed (its end of the connection closed before our answer): this
    process goes the same way, as the command would have gone in the client.

    The kernel tells us: with ``O_ASYNC`` and this process as the socket's owner, the
    connection turning readable raises SIGIO here, whose default action ends the
    process — and the client sends nothing after its request, so readable is its end.
    No watching thread: starting one cost 0.5-2 ms of every command."""
    signal.signal(signal.SIGIO, signal.SIG_DFL)
    fd = conn.fileno()
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    if select.select([fd], [], [], 0)[0]:  # gone before O_ASYNC: no signal was raised
        os.kill(os.getpid(), signal.SIGKILL)


def _run(argv: list[str]) -> int:
    """What ``cli.entry.main`` does, with the exit code returned."""
    from dockyard.cli.fast import dispatch

    code = dispatch(argv)
    if code is not None:
        return code
    from dockyard.cli.main import main as full

    try:
        full()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
