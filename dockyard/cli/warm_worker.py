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
import os
import signal
import socket
import sys
import threading
import types
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
import dockyard.compose.labels  # noqa: F401
import dockyard.compose.order  # noqa: F401
import dockyard.compose.plan  # noqa: F401
import dockyard.compose.resources  # noqa: F401
import dockyard.compose.sources  # noqa: F401
import dockyard.engine.attach_socket  # noqa: F401
import dockyard.engine.etcfiles  # noqa: F401
import dockyard.engine.inspect  # noqa: F401
import dockyard.engine.ocispec  # noqa: F401
import dockyard.engine.runtime_command  # noqa: F401
import dockyard.fs.inroot  # noqa: F401
import dockyard.images.users  # noqa: F401
import dockyard.runtime.seccomp_profile  # noqa: F401
import dockyard.runtime.spec  # noqa: F401
from dockyard import trace


def serve(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> NoReturn:
    """Become the command's process (its streams, working directory, environment,
    umask, arguments), run it, send its exit code on ``conn``; never returns."""
    code = 1
    try:
        conn.sendall(f"{os.getpid()}\n".encode())  # first: where to send signals
        _become(request, fds)
        _die_with_the_client(conn)
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
    process goes the same way, as the command would have gone in the client."""
    def watch() -> None:
        with contextlib.suppress(OSError):
            conn.recv(1)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


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
