"""The parent of the warm path's workers: a child of the zygote that holds the CLI.

A command handed over by a ``dockyard`` process (``cli.warm``) is run by a fork of a
process that has the CLI, the engine and compose loaded already.  That process is not
the zygote itself: every module the zygote loads enlarges the heap each supervisor it
forks starts from, and a supervisor's own allocations then land among pages it must
copy (~0.1–0.2 MiB more private memory per container for the CLI's modules).  So the
zygote forks this parent once (at its start when the front end that started it asks,
else on the first command handed over); it loads the worker module (which imports
what the commands use), freezes those objects out of the collector's reach, and forks a worker
per command.  The zygote passes each request on over a socket pair — the request's
bytes and its descriptors (the client's connection first, then its streams and working
directory) — and hears back one byte per worker started (``+``) and ended (``-``), so
it lingers while commands run.  When the zygote closes the pair, this parent ends
(its workers run on, in sessions of their own).

A fresh fork pays for itself on the command's path: the fork (~1.5 ms for a process
this size), then a page fault and a page copy for every shared page the command
writes — and CPython writes to every object it touches (reference counts), so a warm
``ps`` took ~900 faults, twice its own work.  So while idle this parent keeps one
*spare*: a worker forked ahead that has run the read paths most commands take (the
module's ``warm_up``: no write, nothing made) and waits for a request; the next
request goes to it, and a new spare is forked at once unless another command runs
too (a burst of commands is served by plain forks, not slowed by spares warming up
beside it).  Workers are watched through pidfds, so their ends are heard at once.
"""

from __future__ import annotations

import array
import contextlib
import gc
import os
import select
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard.supervise import pool_holes

_HEADER = 4  # a request's length, little-endian, before its bytes
_MAX_FDS = 5  # the client's connection, its stdin, stdout, stderr and working directory
STARTED, ENDED = b"+", b"-"
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

    def hear(self) -> bool:
        """Read what the parent said (workers started, ended); False once it is gone."""
        try:
            news = self.channel.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            news = b""
        self.running += news.count(STARTED) - news.count(ENDED)
        return bool(news)

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
    try:
        _serve_requests(channel, module_name, module, validate, run_dir, holder)
    finally:
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
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                channel.close()
                ours.close()
                with contextlib.suppress(Exception):  # (none: slower opens, no more)
                    module.hold_store(run_dir, theirs)
            finally:
                os._exit(0)
        theirs.close()
        ours.setblocking(False)  # (a nudge never waits: one missed is one less look)
        self.pid, self.nudges = pid, ours

    def nudge(self) -> None:
        _say(self.nudges, b".")

    def end(self) -> None:
        """Close our end (it ends on seeing that) and reap it."""
        self.nudges.close()
        pidfd = os.pidfd_open(self.pid)
        if not select.select([pidfd], [], [], 1)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # (stuck: not forever)
        _reap(self.pid, pidfd)


def _serve_requests(channel: socket.socket, module_name: str, module: WorkerModule,
                    validate: Validate, run_dir: Path, holder: Holder) -> None:
    workers: dict[int, int] = {}  # a running worker's pidfd -> its pid
    spare: Spare | None = None
    spares = True  # until one dies unasked (then plain forks: never a fork loop)
    while True:
        if spare is None and spares and len(workers) < 2:  # (not amid a burst)
            spare = Spare.fork(channel, module, validate, run_dir,
                               [holder.nudges.fileno(), *workers])
        watched = [channel.fileno(), *workers, *([spare.pidfd] if spare else [])]
        ready, _, _ = select.select(watched, [], [])
        for pidfd in [fd for fd in ready if fd in workers]:
            _reap(workers.pop(pidfd), pidfd)
            _say(channel, ENDED)
        if spare is not None and spare.pidfd in ready:
            spare.close()
            spare, spares = None, False
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
        pid = spare.take(data, fds) if spare is not None else 0
        spare = None
        pid = pid or _fork_worker(channel, module, message, fds,
                                   [holder.nudges.fileno(), *workers])
        _close(fds)
        workers[os.pidfd_open(pid)] = pid
        _say(channel, STARTED)
        holder.nudge()


def _reap(pid: int, pidfd: int) -> None:
    os.close(pidfd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class Spare:
    """A worker forked ahead of its request, warmed up; it takes one request."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)  # readable once it ends
        self.channel = channel  # ours: the request goes over it

    @classmethod
    def fork(cls, zygote_channel: socket.socket, module: WorkerModule, validate: Validate,
             run_dir: Path, parents: list[int]) -> Spare:
        """``parents``: the command parent's descriptors, closed in the spare."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                zygote_channel.close()
                ours.close()
                _close(parents)
                os.setsid()
                _wait_as_spare(theirs, module, validate, run_dir)
            finally:
                os._exit(1)
        theirs.close()
        return cls(pid, ours)

    def take(self, data: bytes, fds: list[int]) -> int:
        """Hand the request over: the spare's pid, now a worker's, or 0 if it is gone
        (a plain fork takes the request)."""
        try:
            _send(self.channel, data, fds)
        except OSError:
            self.close()
            return 0
        self.channel.close()  # (it has the request: it reads nothing more)
        os.close(self.pidfd)  # (the caller watches it as a worker now)
        return self.pid

    def close(self) -> None:
        """Done with it: ended (reaped here), or gone (it ends on seeing our end
        closed)."""
        self.channel.close()
        _reap(self.pid, self.pidfd)


def _wait_as_spare(channel: socket.socket, module: WorkerModule, validate: Validate,
                   run_dir: Path) -> None:
    """In the spare: warm up (cut short by a request that comes meanwhile), then serve
    the one request sent, or end when the command parent has (its end closed)."""
    def interrupted() -> bool:
        return bool(select.select([channel], [], [], 0)[0])

    with contextlib.suppress(Exception):  # (a warm-up that fails warms less: no more)
        module.warm_up(run_dir, interrupted)
    request = _receive(channel)
    if request is None:
        return
    data, fds = request
    channel.close()
    conn_fd, streams = fds[0], fds[1:]
    module.serve(socket.socket(fileno=conn_fd), validate(data), streams)


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


def _fork_worker(channel: socket.socket, module: WorkerModule,
                 message: dict[str, object], fds: list[int], parents: list[int]) -> int:
    """A worker for one request: it answers the client on the connection itself (its
    pid, then the command's exit code).  ``parents``: the parent's descriptors, closed
    in it."""
    conn_fd, streams = fds[0], fds[1:]
    pid = os.fork()
    if pid == 0:
        try:
            channel.close()
            _close(parents)
            os.setsid()
            module.serve(socket.socket(fileno=conn_fd), message, streams)
        finally:
            os._exit(1)
    return pid


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
