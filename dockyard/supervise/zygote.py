"""One lightly-imported parent that forks every container's supervisor.

A supervisor started as a fresh interpreter keeps ~7 MiB of private memory per
container.  Forked from this zygote — which has already imported everything a
supervisor needs and frozen its objects out of the garbage collector's reach
(``gc.freeze()``, so collections do not write to the shared pages) — a supervisor
shares the interpreter and module pages with the zygote and its siblings, and
keeps only what it writes itself.

The zygote is started on demand by the engine (``ensure_zygote``), listens on
``zygote.sock`` in the run directory, receives a request (the supervisor's
arguments as JSON, and its ready-pipe fd over SCM_RIGHTS), forks, and answers with
the child's pid — or hands the request to the child it forked ahead while idle
(``supervise.spare``: the fork is then off the start's path).  It exits once it has
had no supervisors for ``linger`` seconds (``DOCKYARD_ZYGOTE_LINGER``, default 2:
back-to-back ``run --rm`` reuse it instead of paying ~60 ms to start a new one; 0
exits with the last container).
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import select
import socket
import sys
import time
from pathlib import Path

from dockyard.supervise import command_parent, pool_holes
from dockyard.supervise.spare import Spare
from dockyard.supervise.spare import close_in_child as close_spares_in_child
from dockyard.supervise.zygote_address import SOCKET_NAME, connect
from dockyard.supervise.zygote_address import path as _path

PYTHON_HOOK = "@python"  # a hook that is a function call (supervise.monitor's too)
SOCKET_ENV = "DOCKYARD_ZYGOTE_SOCKET"  # a supervisor's: its zygote's socket
PRELOAD_ENV = "DOCKYARD_ZYGOTE_PRELOAD"  # the worker module a front end will hand over to


__all__ = ["SOCKET_NAME", "connect", "request", "serve"]


def serve(run_dir: Path, preload: list[str]) -> int:
    os.chdir("/")  # never hold the CLI's working directory (or its mount) busy
    import importlib

    from dockyard.supervise import monitor  # the heavy imports happen once, here

    for module in preload:  # e.g. the engine's runtime driver, shared by every fork
        importlib.import_module(module)

    monitor.warm_up()
    gc.collect()
    pool_holes.fill()  # a supervisor's objects on pages of its own (see there)
    gc.freeze()
    dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(dir_fd))
    umask = os.umask(0o177)  # what it forks runs as us: for our user alone, from the
    try:  # start (and its peers are checked)
        listener.bind(_path(dir_fd))
    finally:
        os.umask(umask)
    listener.listen(16)
    spares = _SpareSlot(listener, monitor)
    children: dict[int, list[str]] = {}  # supervisor pid -> its arguments
    parked: dict[str, tuple[int, int]] = {}  # container id -> (its pty master, its pidfd)
    watchers: set[int] = set()  # forks running a lost supervisor's --on-lost hook
    # the parent of the forks that run commands handed over (cli.warm): started now
    # when the front end that started us will hand some over, else on the first one
    commands = command_parent.start(_worker_module(), _warm_request, run_dir) \
        if _worker_module() else None
    served = False
    linger = float(os.environ.get("DOCKYARD_ZYGOTE_LINGER", "2"))
    # off only for tests of what the next command does without it
    watchdog = os.environ.get("DOCKYARD_ZYGOTE_WATCHDOG", "1") != "0"
    idle_since = time.monotonic()
    try:
        # a zygote nobody asks within a minute (its requester died) does not stay around
        while (not served and time.monotonic() - idle_since < 60) or children or watchers \
                or (commands and commands.running) or parked \
                or (served and time.monotonic() - idle_since < linger):
            watched = [listener.fileno(), *([commands.fileno()] if commands else [])]
            ready, _, _ = select.select(watched, [], [], 0.05)
            if not ready:  # idle a moment: the next start's supervisor forked ahead
                spares.refill()
            news = commands.hear() if commands is not None and commands.fileno() in ready \
                else b""
            if news is None and commands is not None:
                # it died: another is started for the next command handed over
                _end(commands)
                commands = None
            elif news:  # (commands come to it directly: each is news of one)
                served, idle_since = True, time.monotonic()
            if listener.fileno() in ready:
                conn, _ = listener.accept()
                if not command_parent.same_user(conn):
                    conn.close()
                    continue
                with conn:
                    pid, argv, commands = _serve_request(conn, spares, parked, commands,
                                                         run_dir)
                if pid:
                    children[pid] = argv
                served = served or bool(pid) or argv == [WORKER]
                if argv == [WORKER]:  # (its worker's start is heard of a moment later)
                    idle_since = time.monotonic()
            _drop_ended(parked)
            for pid in list(children):
                status = _exit_status(pid)
                if status is None:
                    continue
                argv = children.pop(pid)
                if watchdog and os.WIFSIGNALED(status):  # killed: its container runs
                    # unsupervised now
                    watchers.add(_watch(argv, listener))
            watchers = {pid for pid in watchers if pid and _exit_status(pid) is None}
            if children or watchers or (commands and commands.running):
                idle_since = time.monotonic()
    finally:
        if commands:
            _end(commands)
        with contextlib.suppress(OSError):
            os.unlink(_path(dir_fd))
        listener.close()
        spares.close()
    return 0


def _exit_status(pid: int) -> int | None:
    """The wait status of our child ``pid`` once it ended (reaped), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done == pid else None


def _watch(argv: list[str], listener: socket.socket) -> int:
    """The zygote as watchdog: a supervisor was killed, so its ``--on-lost`` hook (the
    engine's re-adoption: a new supervisor takes the container over, or its restart
    policy is applied) runs at once, in a fork not waited for here (it asks this
    zygote for the new supervisor), instead of when the next command looks."""
    if "--on-lost" not in argv:
        return 0
    try:
        hook = json.loads(argv[argv.index("--on-lost") + 1])
    except (IndexError, ValueError):
        return 0
    if not isinstance(hook, list) or hook[:1] != [PYTHON_HOOK] or len(hook) < 3:
        return 0
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            listener.close()
            command_parent.close_in_child()
            close_spares_in_child()
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            import importlib

            getattr(importlib.import_module(hook[1]), hook[2])(*hook[3:])
            code = 0
        finally:
            os._exit(code)
    return pid


def _serve_request(conn: socket.socket, spares: _SpareSlot,
                   parked: dict[str, tuple[int, int]],
                   commands: command_parent.CommandParent | None, run_dir: Path,
                   ) -> tuple[int, list[str], command_parent.CommandParent | None]:
    """One request: a supervisor to fork (its arguments, a JSON list, and its ready
    pipe), a TTY container's pty master to keep or to give back (a JSON object), or a
    command handed over (passed on to the command parent, started if need be)."""
    # (up to four descriptors: a warm command's streams and working directory)
    data, fds = command_parent.receive_request(conn)
    if data.startswith(WORKER_TAG):
        return 0, [WORKER], _pass_on(conn, data, fds, commands, run_dir)
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if isinstance(message, dict):
        _park_request(conn, message, fds, parked)
        return 0, [], commands
    if not fds or not isinstance(message, list):
        for fd in fds:
            os.close(fd)
        return 0, [], commands
    return (*_fork_supervisor(conn, spares, message, fds[0]), commands)


WORKER = "@cli"  # what the serving loop is told a worker's arguments are
WORKER_TAG = command_parent.WARM_TAG  # a command handed over (cli.warm.encode_request)


def _warm_request(data: bytes) -> dict[str, object]:
    """``cli.warm.encode_request``'s fields: {"cli", "umask", "argv", "env"} ({} if
    malformed, or not as long as it says)."""
    head, sep, rest = data[len(WORKER_TAG):].partition(b"\0")
    if not data.startswith(WORKER_TAG) or not sep or not head.isdigit() \
            or int(head) != len(rest):
        return {}
    fields = rest.decode(errors="surrogateescape").split("\0")
    try:
        module, umask, count = fields[0], int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return {}
    argv, env = fields[3:3 + count], fields[3 + count:]
    if len(argv) != count or not all("=" in entry for entry in env):
        return {}
    return {"cli": module, "umask": umask, "argv": argv,
            "env": dict(entry.split("=", 1) for entry in env)}


def _worker_module() -> str:
    """The worker module the front end that started us named (``cli.warm``'s), or ""."""
    named = os.environ.get(PRELOAD_ENV, "")
    return named if named.startswith("dockyard.cli.") and "," not in named else ""


def _end(commands: command_parent.CommandParent) -> None:
    """Close the pair (a live command parent ends on seeing it closed) and reap it
    once it has."""
    commands.close()
    deadline = time.monotonic() + 2  # (it may be importing still: not forever)
    while _exit_status(commands.pid) is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _pass_on(conn: socket.socket, data: bytes, fds: list[int],
             commands: command_parent.CommandParent | None, run_dir: Path,
             ) -> command_parent.CommandParent | None:
    """A command handed over, to the command parent (one started for its worker module
    if none runs), with the connection it answers on; refused (the connection closed,
    so the client runs the command itself) if malformed."""
    module_name = str(_warm_request(data).get("cli", ""))
    if module_name.startswith("dockyard.cli.") and len(fds) == 4:
        if commands is not None and not commands.pass_on(data, [conn.fileno(), *fds]):
            _end(commands)  # it died: another takes the request
            commands = None
        if commands is None:
            commands = command_parent.start(module_name, _warm_request, run_dir)
            commands.pass_on(data, [conn.fileno(), *fds])
    for fd in fds:
        os.close(fd)
    return commands


def _park_request(conn: socket.socket, message: dict[str, object], fds: list[int],
                  parked: dict[str, tuple[int, int]]) -> None:
    """A TTY container's pty master kept here (``park``), beside its init's pidfd, so
    the container's terminal outlives a killed supervisor (the master closing would
    hang the terminal up: SIGHUP to the container) and a new supervisor gets it back
    (``unpark``); dropped once the init exits."""
    container_id = str(message.get("park") or message.get("unpark") or "")
    if "park" in message and fds:
        try:
            pidfd = os.pidfd_open(int(str(message.get("pid"))))
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.sendall(b"gone")
            return
        os.set_inheritable(fds[0], False)
        old = parked.pop(container_id, None)
        if old:
            for fd in old:
                os.close(fd)
        parked[container_id] = (fds[0], pidfd)
        conn.sendall(b"ok")
        return
    for fd in fds:
        os.close(fd)
    kept = parked.get(container_id)
    if kept is None:
        conn.sendall(b"none")
        return
    conn.sendmsg([b"ok"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [kept[0]]))])


def _drop_ended(parked: dict[str, tuple[int, int]]) -> None:
    if not parked:
        return
    ended, _, _ = select.select([pidfd for _fd, pidfd in parked.values()], [], [], 0)
    for container_id, (fd, pidfd) in list(parked.items()):
        if pidfd in ended:
            os.close(fd)
            os.close(pidfd)
            del parked[container_id]


def park_console(container_id: str, pid: int, master: int) -> None:
    """A supervisor's: keep a copy of its container's pty master in its zygote."""
    _ask_zygote({"park": container_id, "pid": pid}, master)


def unpark_console(container_id: str) -> int | None:
    """An adopting supervisor's: the pty master its zygote kept, or None."""
    return _ask_zygote({"unpark": container_id}, None)


def _ask_zygote(message: dict[str, object], fd: int | None) -> int | None:
    path = os.environ.get(SOCKET_ENV, "")
    if not path:
        return None
    fds = array.array("i")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendmsg([json.dumps(message).encode()], [] if fd is None else [
                (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            _data, ancdata, _flags, _addr = sock.recvmsg(64, socket.CMSG_LEN(fds.itemsize))
    except OSError:
        return None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return fds[0] if fds else None


def _fork_supervisor(conn: socket.socket, spares: _SpareSlot, argv: list[str],
                     ready_fd: int) -> tuple[int, list[str]]:
    """The supervisor: the spare forked ahead, given the request, or a fork now."""
    # SCM_RIGHTS fds arrive inheritable; the container's init must not keep the ready
    # pipe open (the CLI reads it to EOF)
    os.set_inheritable(ready_fd, False)
    spare = spares.take()
    if spare is not None and spare.hand(argv, ready_fd):
        pid = spare.pid
    else:
        if spare is not None:  # (gone, or the request too large for the pair)
            spares.reap_later(spare.pid)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                spares.prepare()
                code = spares.supervise(argv, ready_fd)
            finally:
                os._exit(code)
    os.close(ready_fd)
    conn.sendall(str(pid).encode())
    return pid, argv


_SPARE_AFTER = 0.1  # s idle after a start (or the zygote's own) before a spare is forked


class _SpareSlot:
    """The zygote's one spare supervisor (``supervise.spare``): forked once the zygote
    has been idle a moment, taken by the next request, and what a supervisor's fork
    does first (``prepare``) and then (``supervise``), alike for both."""

    def __init__(self, listener: socket.socket, monitor: object) -> None:
        self.listener = listener
        self.monitor = monitor
        # the zygote's socket as its children can reach it: through the zygote's own
        # descriptor of the run dir (a run dir's path may be longer than a socket's)
        self.socket_path = f"/proc/{os.getpid()}" + \
            str(listener.getsockname()).removeprefix("/proc/self")
        self.spare: Spare | None = None
        self.due = time.monotonic() + _SPARE_AFTER
        self.ended: set[int] = set()  # spares let go, to be reaped once they end

    def prepare(self) -> None:
        """A supervisor's fork, first: none of the zygote's descriptors, a session of
        its own."""
        self.listener.close()
        command_parent.close_in_child()
        close_spares_in_child()
        os.setsid()
        os.environ[SOCKET_ENV] = self.socket_path  # where to park a pty master

    def supervise(self, argv: list[str], ready_fd: int) -> int:
        """Be the supervisor ``argv`` asks for (in the fork): its exit code."""
        log = os.open(Path(argv[argv.index("--bundle") + 1]) / "supervisor.log",
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        return int(self.monitor.main(  # type: ignore[attr-defined]
            [*argv, "--ready-fd", str(ready_fd)]))

    def take(self) -> Spare | None:
        """The spare, if there is one and it lives; the next is due later."""
        spare, self.spare = self.spare, None
        self.due = time.monotonic() + _SPARE_AFTER
        if spare is not None and _exit_status(spare.pid) is not None:
            spare.discard()  # (it died: reaped just now)
            return None
        return spare

    def reap_later(self, pid: int) -> None:
        self.ended.add(pid)

    def refill(self) -> None:
        """A spare forked, if none waits and the zygote has been idle long enough (a
        fork that fails — no pid or memory left — is tried again 5 s later: the
        zygote, every supervisor's watchdog, must not die of it)."""
        self.ended = {pid for pid in self.ended if _exit_status(pid) is None}
        if self.spare is not None and _exit_status(self.spare.pid) is not None:
            self.spare.discard()  # (died while waiting: reaped just now)
            self.spare = None
        if self.spare is None and time.monotonic() >= self.due:
            try:
                self.spare = Spare.fork(self.prepare, self.supervise)
            except OSError as exc:
                print(f"zygote: no spare supervisor ({exc}); trying again later",
                      file=sys.stderr, flush=True)
                self.due = time.monotonic() + 5

    def close(self) -> None:
        """The spare ends unused; reaped once it has (not forever: it may be busy)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return
        spare.discard()
        deadline = time.monotonic() + 2
        while _exit_status(spare.pid) is None and time.monotonic() < deadline:
            time.sleep(0.002)


def request(run_dir: Path, argv: list[str], ready_fd: int, python: str,
            preload: tuple[str, ...] = ()) -> int:
    """Ask the zygote (starting one if there is none) for a supervisor; returns its pid."""
    for attempt in range(2):
        sock = connect(run_dir) or _start(run_dir, python, preload)
        try:
            with sock:
                sock.sendmsg([json.dumps(argv).encode()],
                             [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i",
                                                                                [ready_fd]))])
                answer = sock.recv(64)
            if answer:
                return int(answer)
        except OSError:
            if attempt:
                raise
    raise RuntimeError("the supervisor zygote did not answer")


def _start(run_dir: Path, python: str, preload: tuple[str, ...]) -> socket.socket:
    """A connection to a zygote started now, unless another caller (a thread of this
    process, as ``compose up`` starts services side by side, or another CLI) started
    one meanwhile: one at a time under a lock, so that no zygote is displaced from its
    socket by a second one and left waiting a minute for a request that never comes."""
    import fcntl

    lock = os.open(run_dir / "zygote.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = connect(run_dir)
        if sock is None:
            _spawn(run_dir, python, preload)
            sock = _wait_for(run_dir)
        return sock
    finally:
        os.close(lock)


def _spawn(run_dir: Path, python: str, preload: tuple[str, ...]) -> None:
    # -P: never import dockyard from the working directory (a checkout) instead of the
    # installed code the CLI runs; cwd="/": never keep the caller's directory busy
    import subprocess  # only here: ~1 ms of imports otherwise on every start

    subprocess.Popen([python, "-P", "-m", "dockyard.supervise.zygote", str(run_dir), *preload],
                     cwd="/",
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def _wait_for(run_dir: Path) -> socket.socket:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sock = connect(run_dir)
        if sock is not None:
            return sock
        time.sleep(0.005)
    raise RuntimeError("the supervisor zygote did not start")


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1]), sys.argv[2:]))
