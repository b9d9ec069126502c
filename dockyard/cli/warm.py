"""The warm path: a hot command run by a fork of the root's zygote, not by this process.

A fresh interpreter pays for its imports on every command: the engine, the store,
the fast path's tables — ~35 ms of CPU before ``run`` or ``ps`` does any work of its
own, more than most of them do.  The root's zygote (``supervise.zygote``) already holds
that code, loaded once, for the supervisors it forks.  When one is running, this
process only connects to it and hands over what makes the command ours: its
arguments, environment, umask, working directory and standard streams (the
descriptors themselves, over SCM_RIGHTS, so a terminal, a pipe or a file is written
exactly as this process would).  A worker forked ahead by the zygote's command
parent (``supervise.command_parent``), which this process connects to directly once
it runs, runs the command (``cli.warm_worker``); this process forwards the signals
it is sent and exits with the worker's code.  No zygote (nothing has run on this
root lately): the command runs here as before — a read such as ``ps`` never starts
one.

If this process is killed, its worker sees the connection close and is killed too,
as the command itself would have been.  ``DOCKYARD_WARM_CLI=0`` turns the path off.

What this process imports is what a warm command costs beyond the interpreter, so
it is held to modules written in C: ``_socket`` and ``_signal`` rather than
``socket`` and ``signal`` (whose Python layers import enum, selectors and more),
no typing, contextlib or json — ~11 ms of a ~40 ms ``ps``; a test holds it to that.
"""

import _socket
import os
import sys

from dockyard import trace
from dockyard.cli import global_flags

TYPE_CHECKING = False
if TYPE_CHECKING:  # (typeshed has no stub of _signal: the same names, typed)
    import signal as _signal
else:
    import _signal

# commands worth a hand-over: the hot ones (the fast path's) and the lifecycle ones
WARM_COMMANDS = frozenset({"run", "ps", "images", "inspect", "rm", "start", "stop", "kill",
                           "create", "restart", "wait", "port", "logs", "compose", "exec"})
WORKER_MODULE = "dockyard.cli.warm_worker"
REQUEST_TAG = "warm"
DEFAULT_ROOT = "/var/lib/dockyard"  # (store.layout's)
DEFAULT_RUN_DIR = "/run/dockyard"
DIED = 125  # the worker ended without an exit code (killed): Docker's "daemon" error
# sent to us alone (kill PID) go to the worker; those a terminal sends to its
# foreground process group go to the worker's group (it and what it started)
_TO_WORKER = (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGUSR1, _signal.SIGUSR2)
_TO_GROUP = (_signal.SIGINT, _signal.SIGQUIT, _signal.SIGWINCH)


def command_root(argv: list[str]) -> tuple[str, str | None] | None:
    """The command's name and ``--root`` (None: the default), or None when the
    arguments before the command are not the global flags (click words the error)."""
    found = global_flags.read(argv)
    if found is None or found.end >= len(argv):
        return None
    return argv[found.end], found.root


def run(argv: list[str]) -> int | None:
    """The command's exit code, run by a warm worker; None to run it here."""
    if os.environ.get("DOCKYARD_WARM_CLI", "1") == "0":
        return None
    # a zygote this command starts (for a supervisor) loads the worker up front
    os.environ.setdefault("DOCKYARD_ZYGOTE_PRELOAD", WORKER_MODULE)
    found = command_root(argv)
    if found is None or found[0] not in WARM_COMMANDS or "--help" in argv:
        return None
    from dockyard.supervise.zygote_address import COMMANDS_SOCKET_NAME, SOCKET_NAME, connect_raw

    try:  # the zygote's command parent directly, else through the zygote (it starts one)
        sock = connect_raw(run_dir(found[1] or os.environ.get("DOCKYARD_ROOT") or None),
                           (COMMANDS_SOCKET_NAME, SOCKET_NAME))
    except OSError:
        return None
    if sock is None:
        return None
    trace.mark("warm: connected")
    try:
        handed = _hand_over(sock, argv)
        if handed is None:
            return None  # it never started: nothing ran, so run it here
        return _wait(sock, *handed)
    finally:
        sock.close()


def run_dir(root: str | None) -> str:
    """``store.layout.Layout.for_root(root).run_dir``, without importing the store
    (~8 ms of a command that only connects; a unit test holds the two alike)."""
    base = os.path.abspath(root) if root else DEFAULT_ROOT
    return DEFAULT_RUN_DIR if base == DEFAULT_ROOT else os.path.join(base, "run")


def encode_request(argv: list[str], env: dict[str, str], umask: int) -> bytes:
    """The hand-over as the zygote reads it (``supervise.zygote``): NUL-separated
    fields — the tag, the length in bytes of what follows it, the worker module, the
    umask, the number of arguments, the arguments, then the environment as NAME=VALUE
    (no field can hold a NUL: each is a C string to the kernel).  The length lets the
    reader take a request longer than one read returns (a large environment or
    argument list) whole, and tell a cut one.  No JSON: its decoder's imports cost
    ~4 ms here."""
    fields = [WORKER_MODULE, str(umask), str(len(argv)), *argv,
              *(f"{name}={value}" for name, value in env.items())]
    rest = "\0".join(fields).encode(errors="surrogateescape")
    return f"\0{REQUEST_TAG}\0{len(rest)}\0".encode() + rest


def _hand_over(sock: _socket.socket, argv: list[str]) -> tuple[int, bytes] | None:
    """Send the command; the worker's pid once it runs (and what else it sent), or
    None if it never did."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        request = encode_request(argv, dict(os.environ), umask)
    except UnicodeEncodeError:
        return None
    try:
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # (a working directory removed under us: click says so)
    try:
        # C ints, as array.array("i") packs them (array imports collections: ~2 ms)
        fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2, cwd))
        sock.sendmsg([request],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        answer = b""
        while b"\n" not in answer:
            chunk = sock.recv(64)
            if not chunk:
                return None
            answer += chunk
        pid, _, rest = answer.partition(b"\n")
        return int(pid), rest
    except (OSError, ValueError):  # a closed stream, a zygote that just exited
        return None
    finally:
        os.close(cwd)


def _wait(sock: _socket.socket, worker: int, answer: bytes) -> int:
    """Forward signals to the worker until it sends its exit code."""
    try:
        pidfd = os.pidfd_open(worker)
    except OSError:
        pidfd = -1

    forwarded: list[int] = []

    def forward(number: int, _frame: object) -> None:
        if pidfd < 0:
            return
        forwarded.append(number)
        try:
            if number in _TO_GROUP and not _ended(pidfd):
                os.killpg(worker, number)  # (its group while it lives: it leads it)
            else:
                _signal.pidfd_send_signal(pidfd, number)
        except OSError:
            pass

    for number in (*_TO_WORKER, *_TO_GROUP):
        _signal.signal(number, forward)
    try:
        # the code's line, not the connection's end: that comes with the worker's exit,
        # ~1 ms later (the teardown of a process this size), and its work is done
        while b"\n" not in answer:
            try:
                chunk = sock.recv(64)
            except InterruptedError:
                continue
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    try:
        return int(answer.partition(b"\n")[0])
    except ValueError:
        pass
    if forwarded and forwarded[-1] != _signal.SIGWINCH:  # it died of what we passed on:
        return 128 + forwarded[-1]  # as the command would have here (a shell's view)
    sys.stderr.write("dockyard: the command's process ended without an exit code\n")
    return DIED


def _ended(pidfd: int) -> bool:
    import select

    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)
