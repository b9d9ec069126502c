"""The parent of the warm path's workers: a child of the zygote that holds the CLI.

A command handed over by a ``dockyard`` process (``cli.warm``) is run by a fork of a
process that has the CLI, the engine and compose loaded already.  That process is not
the zygote itself: every module the zygote loads enlarges the heap each supervisor it
forks starts from, and a supervisor's own allocations then land among pages it must
copy (~0.1–0.2 MiB more private memory per container for the CLI's modules).  So the
zygote forks this parent once (at its start when the front end that started it asks,
else on the first command handed over); it loads the worker module (which imports
what the commands use), freezes those objects out of the collector's reach, and forks a
worker per command.  It hears of commands two ways:

* directly (``Listener``): it listens on a socket of its own beside the zygote's, and
  a client connects there first.  One hop: a command the zygote passed on woke the
  zygote, then this parent, then the worker.  Whoever accepts (the spare, else a
  fork made for it) reads the request and checks the peer itself.
* through the zygote (the first command, which started this parent; or a client that
  found no one listening here): over a socket pair, the request's bytes and its
  descriptors (the client's connection first, then its streams and working
  directory), each run by a fork made for it.

Either way it tells the zygote one byte per worker started (``+``) and ended (``-``),
so that the zygote lingers while commands run.  When the zygote closes the pair, this
parent ends (its workers run on, in sessions of their own) and removes its socket.

A fresh fork pays for itself on the command's path: the fork (~1.5 ms for a process
this size), then a page fault and a page copy for every shared page the command
writes — and CPython writes to every object it touches (reference counts), so a warm
``ps`` took ~900 faults, twice its own work.  So while idle this parent keeps one
*spare*: a worker forked ahead that has run the read paths most commands take (the
module's ``warm_up``: no write, nothing made) and waits on the listener; the next
client is accepted by it.  The next spare is forked once that command has ended, or
has run 100 ms, and not while two commands run (a burst of commands is served by
plain forks, not slowed by spares warming up beside it).  Workers are watched
through pidfds, so their ends are heard at once.  A third child, the ``Holder``,
keeps the root's database open.
"""
from __future__ import annotations

import array
import contextlib
import functools
import gc
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard.supervise import pool_holes

_HEADER = 4  # a request's length, little-endian, before its bytes
_MAX_FDS = 5  # the client's connection, its stdin, stdout, stderr and working directory
STARTED, ENDED = b"+", b"-"
_SPARE_AFTER = 0.1  # seconds of a command running before a spare is forked beside it
Validate = Callable[[bytes], dict[str, object]]


class WorkerModule(Protocol):
    """What the worker module (``cli.warm_worker``) gives its forks to run."""

    def serve(self, conn: socket.socket, request: dict[str, object],
              fds: list[int]) -> None: ...

    def warm_up(self, run_dir: Path, interrupted: Callable[[], bool]) -> None: ...

    def hold_store(self, run_dir: Path, nudges: socket.socket) -> None: ...


class CommandParent:
    """The zygote's handle on its command parent: its pid and its end of the pair."""

    # the zygote's ends of its pairs: every other child the zygote forks closes them
    # (``close_in_child``), or a supervisor holding one would keep a command parent
    # from seeing the zygote go, and it would outlive it
    open_channels: set[socket.socket] = set()

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.running = 0  # workers started and not yet ended
        self.open_channels.add(channel)

    def fileno(self) -> int:
        return self.channel.fileno()

    def pass_on(self, data: bytes, fds: list[int]) -> bool:
        """Hand a request over (its descriptors: the connection first); False if the
        parent is gone."""
        try:
            _send(self.channel, data, fds)
        except OSError:
            return False
        return True

    def hear(self) -> bytes | None:
        """Read what the parent said (workers started, ended: b"" when nothing yet);
        None once it is gone."""
        try:
            news = self.channel.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return b""
        except OSError:
            news = b""
        self.running += news.count(STARTED) - news.count(ENDED)
        return news or None

    def close(self) -> None:
        self.open_channels.discard(self.channel)
        self.channel.close()


def close_in_child() -> None:
    """In a child the zygote forked (a supervisor, a watcher): drop the zygote's ends."""
    for channel in CommandParent.open_channels:
        channel.close()


def start(module_name: str, validate: Validate, run_dir: Path) -> CommandParent:
    """Fork the command parent for the root of ``run_dir``; ``validate`` reads a
    request (``{}`` when malformed)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # nothing of the zygote's but the pair: not its listener, not the request
            # being served (whose connection, kept here, would never reach its end)
            keep = theirs.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            _serve(theirs, module_name, validate, run_dir)
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    return CommandParent(pid, ours)


def _serve(channel: socket.socket, module_name: str, validate: Validate,
           run_dir: Path) -> None:
    import importlib

    module: WorkerModule = importlib.import_module(module_name)
    gc.collect()
    pool_holes.fill()  # the workers' objects on pages of their own (see there)
    gc.freeze()  # the workers' collections must not write to these shared pages
    holder = Holder(channel, module, run_dir)
    listener: Listener | None = None
    try:
        with contextlib.suppress(OSError):  # (none: commands come through the zygote)
            listener = Listener(run_dir)
        _serve_requests(channel, module_name, module, validate, run_dir, holder, listener)
    finally:
        if listener is not None:
            listener.close()
        holder.end()


class Holder:
    """A child that keeps the root's database open while this parent lives
    (``hold_store``: every command's open of it is then ~1.5 ms shorter), nudged
    after each command to look at the database again (the root may have been made,
    removed or made anew).  A child of its own, not this process: a connection must
    never be inherited by a fork that opens the database too, as every worker does
    (SQLite's locks are the process's; its state would be copied).  Forked first,
    when this parent holds nothing else a child must not keep."""

    def __init__(self, channel: socket.socket, module: WorkerModule, run_dir: Path) -> None:
        def hold(theirs: socket.socket) -> None:
            with contextlib.suppress(Exception):  # (none: slower opens, no more)
                module.hold_store(run_dir, theirs)

        self.pid, self.nudges = _fork_with_pair(channel, hold)
        self.nudges.setblocking(False)  # (a nudge never waits: one missed is one less look)

    def nudge(self) -> None:
        _say(self.nudges, b".")

    def end(self) -> None:
        """Close our end (it ends on seeing that) and reap it."""
        self.nudges.close()
        pidfd = os.pidfd_open(self.pid)
        if not select.select([pidfd], [], [], 1)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # (stuck: not forever)
        _reap(self.pid, pidfd)


class Listener:
    """Where a client connects to this parent directly (``zygote_address.
    COMMANDS_SOCKET_NAME``, beside the zygote's socket): one hop, not two — a
    command the zygote passed on woke it and then this parent before any worker.
    The spare accepts on it while one waits; else this parent accepts and forks a
    worker.  Whoever accepts reads the request itself (the parent never waits on a
    client).  Removed when this parent ends, unless a newer one has bound it since."""

    def __init__(self, run_dir: Path) -> None:
        from dockyard.supervise.zygote_address import COMMANDS_SOCKET_NAME

        self.name = COMMANDS_SOCKET_NAME
        self.dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = f"/proc/self/fd/{self.dir_fd}/{self.name}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name, dir_fd=self.dir_fd)
        umask = os.umask(0o177)  # for our user alone from the start (its peers are
        try:  # checked too)
            self.sock.bind(path)
        finally:
            os.umask(umask)
        self.sock.listen(64)
        self.sock.setblocking(False)  # (the spare and this parent may both try)
        info = os.stat(self.name, dir_fd=self.dir_fd)
        self.bound = (info.st_dev, info.st_ino)

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> socket.socket | None:
        """A client's connection (blocking), or None when another took it."""
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        conn.setblocking(True)
        return conn

    def close(self) -> None:
        with contextlib.suppress(OSError):
            info = os.stat(self.name, dir_fd=self.dir_fd)
            if (info.st_dev, info.st_ino) == self.bound:
                os.unlink(self.name, dir_fd=self.dir_fd)
        self.sock.close()
        os.close(self.dir_fd)


def _serve_requests(channel: socket.socket, module_name: str, module: WorkerModule,
                    validate: Validate, run_dir: Path, holder: Holder,
                    listener: Listener | None) -> None:
    """Commands that come to the listener (the spare's, or forks of ours) and those
    the zygote passes on (each by a fork of ours), until the zygote is gone.  No
    listener (its socket could not be made): those through the zygote alone."""
    workers: dict[int, int] = {}  # a running worker's pidfd -> its pid
    spare: Spare | None = None
    spares = True  # until one dies unasked (then plain forks: never a fork loop)
    last_start = 0.0

    def started(pidfd: int, pid: int) -> None:
        nonlocal last_start
        workers[pidfd] = pid
        last_start = time.monotonic()
        _say(channel, STARTED)

    def fork_for(serve: Callable[[], None]) -> None:
        ours = [holder.nudges.fileno(), *workers,
                *([spare.channel.fileno(), spare.pidfd] if spare is not None else []),
                *([listener.fileno(), listener.dir_fd] if listener is not None else [])]
        pid = _fork_worker(channel, ours, serve)
        started(os.pidfd_open(pid), pid)

    while True:
        timeout = None
        # (a command the zygote passed on is waiting: it goes first, the spare after it)
        if spare is None and spares and listener is not None and len(workers) < 2 \
                and not select.select([channel], [], [], 0)[0]:  # (not amid a burst)
            # the next spare once the command has ended, or has run a while: its fork
            # and warm-up (~10 ms of CPU) would otherwise compete with the command
            wait = 0.0 if not workers else last_start + _SPARE_AFTER - time.monotonic()
            if wait <= 0:
                spare = Spare.fork(channel, module, validate, module_name, run_dir,
                                   listener, [holder.nudges.fileno(), *workers])
            else:
                timeout = wait
        watched = [channel.fileno(), *workers,
                   *([spare.pidfd, spare.channel.fileno()] if spare
                     else [listener.fileno()] if listener else [])]
        ready, _, _ = select.select(watched, [], [], timeout)
        for pidfd in [fd for fd in ready if fd in workers]:
            _reap(workers.pop(pidfd), pidfd)
            _say(channel, ENDED)
            holder.nudge()  # (the command may have made, or removed, the database)
        if spare is not None and (spare.pidfd in ready or spare.channel.fileno() in ready):
            if spare.took():
                started(spare.pidfd, spare.pid)
                spare = None
            elif spare.pidfd in ready:  # it died unasked
                spare.close()
                spare, spares = None, False
        elif spare is None and listener is not None and listener.fileno() in ready:
            conn = listener.accept()
            if conn is not None:
                fork_for(functools.partial(_serve_connection, conn, module, validate,
                                           module_name))
                conn.close()
        if channel.fileno() not in ready:
            continue
        request = _receive(channel)
        if request is None:
            return  # the zygote is gone
        data, fds = request
        message = validate(data)
        if message.get("cli") != module_name or len(fds) != _MAX_FDS:
            _close(fds)
            continue
        fork_for(functools.partial(_serve_passed_on, module, message, fds))
        _close(fds)


def _serve_connection(conn: socket.socket, module: WorkerModule, validate: Validate,
                      module_name: str) -> None:
    """In a worker that accepted a client's connection: read its request (its bytes,
    its streams and working directory) and run it; a client of another user, or a
    malformed or late request, is hung up on (the client then runs the command
    itself, or says nothing ran)."""
    if not same_user(conn):
        return
    conn.settimeout(10)  # (a client that connects and sends nothing: not forever)
    try:
        data, fds = receive_request(conn)
    except OSError:
        return
    conn.settimeout(None)
    message = validate(data)
    if message.get("cli") != module_name or len(fds) != _MAX_FDS - 1:
        _close(fds)
        return
    module.serve(conn, message, fds)


def same_user(conn: socket.socket) -> bool:
    """The peer runs as our user (SO_PEERCRED): no one else may have a supervisor or a
    command forked as us, whatever the socket's mode."""
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


WARM_TAG = b"\0warm\0"  # a command handed over (``cli.warm.encode_request``)
_MAX_REQUEST = 16 << 20  # bytes: more than the kernel lets a command line and environment be


def receive_request(conn: socket.socket) -> tuple[bytes, list[int]]:
    """A client's request as it sends it (``cli.warm``'s hand-over, whole however many
    reads it takes: it says its length; or a supervisor's arguments, one read) and
    the descriptors that came with it (at most four)."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = conn.recvmsg(
        1 << 18, socket.CMSG_LEN((_MAX_FDS - 1) * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if data.startswith(WARM_TAG):
        head, _, rest = data[len(WARM_TAG):].partition(b"\0")
        missing = int(head) - len(rest) if head.isdigit() and int(head) <= _MAX_REQUEST else 0
        parts = [data]
        while missing > 0:
            chunk = conn.recv(min(missing, 1 << 20))
            if not chunk:
                break  # (cut short: ``_warm_request`` refuses it)
            parts.append(chunk)
            missing -= len(chunk)
        data = b"".join(parts)
    return data, list(fds)


def _reap(pid: int, pidfd: int) -> None:
    os.close(pidfd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class Spare:
    """A worker forked ahead of its command, warmed up; it accepts one connection on
    the listener and says so (``TAKEN``) before it serves it."""

    TAKEN = b"!"

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)  # readable once it ends
        self.channel = channel  # ours: TAKEN comes over it; closed, the spare ends

    @classmethod
    def fork(cls, zygote_channel: socket.socket, module: WorkerModule, validate: Validate,
             module_name: str, run_dir: Path, listener: Listener,
             parents: list[int]) -> Spare:
        """``parents``: the command parent's descriptors, closed in the spare."""
        def wait(theirs: socket.socket) -> None:
            _close(parents)
            os.setsid()
            _wait_as_spare(theirs, listener, module, validate, module_name, run_dir)

        return cls(*_fork_with_pair(zygote_channel, wait))

    def took(self) -> bool:
        """It accepted a connection (it is a worker now: its pidfd is the caller's to
        watch); False if it said nothing (ended)."""
        try:
            said = self.channel.recv(1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            said = b""
        if said != self.TAKEN:
            return False
        self.channel.close()
        return True

    def close(self) -> None:
        """Done with it: ended (reaped here), or gone (it ends on seeing our end
        closed)."""
        self.channel.close()
        _reap(self.pid, self.pidfd)


def _fork_with_pair(zygote_channel: socket.socket, run: Callable[[socket.socket], None],
                    ) -> tuple[int, socket.socket]:
    """A child that runs ``run`` with its end of a new socket pair (not the zygote's
    pair) and then ends; its pid and our end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            zygote_channel.close()
            ours.close()
            run(theirs)
        finally:
            os._exit(0)
    theirs.close()
    return pid, ours


def _wait_as_spare(channel: socket.socket, listener: Listener, module: WorkerModule,
                   validate: Validate, module_name: str, run_dir: Path) -> None:
    """In the spare: warm up (cut short by a client that comes meanwhile), then accept
    one connection and serve it; or end when the command parent has (its end
    closed)."""
    watched = [channel.fileno(), listener.fileno()]

    def interrupted() -> bool:
        return bool(select.select(watched, [], [], 0)[0])

    with contextlib.suppress(Exception):  # (a warm-up that fails warms less: no more)
        module.warm_up(run_dir, interrupted)
    while True:
        ready, _, _ = select.select(watched, [], [])
        if channel.fileno() in ready:
            return  # the command parent ended
        conn = listener.accept()
        if conn is not None:
            break
    _say(channel, Spare.TAKEN)
    channel.close()
    listener.sock.close()
    os.close(listener.dir_fd)
    _serve_connection(conn, module, validate, module_name)


def _send(channel: socket.socket, data: bytes, fds: list[int]) -> None:
    """A request as ``_receive`` reads it: its length, its bytes, its descriptors."""
    message = len(data).to_bytes(_HEADER, "little") + data
    sent = channel.sendmsg([message], [
        (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    if sent < len(message):  # (not an empty send: a spare that read it all may have
        channel.sendall(message[sent:])  # closed its end, and that would say EPIPE)


def _say(channel: socket.socket, news: bytes) -> None:
    with contextlib.suppress(OSError):
        channel.sendall(news)


def _receive(channel: socket.socket) -> tuple[bytes, list[int]] | None:
    """One request from the zygote, or None once the pair is closed."""
    fds = array.array("i")
    head, ancdata, _flags, _addr = channel.recvmsg(
        _HEADER, socket.CMSG_LEN(_MAX_FDS * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if len(head) < _HEADER:
        for fd in fds:
            os.close(fd)
        return None
    size = int.from_bytes(head, "little")
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None
        data += chunk
    return data, list(fds)


def _serve_passed_on(module: WorkerModule, message: dict[str, object],
                     fds: list[int]) -> None:
    """In a worker: a request the zygote passed on (its connection first)."""
    module.serve(socket.socket(fileno=fds[0]), message, fds[1:])


def _fork_worker(channel: socket.socket, parents: list[int],
                 serve: Callable[[], None]) -> int:
    """A worker for one command: ``serve`` runs it (a connection accepted here, whose
    request the worker reads, or a request the zygote passed on) and answers the
    client on the connection itself (its pid, then the command's exit code).
    ``parents``: the parent's descriptors, closed in it."""
    pid = os.fork()
    if pid == 0:
        try:
            channel.close()
            _close(parents)
            os.setsid()
            serve()
        finally:
            os._exit(1)
    return pid


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
