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
"""

from __future__ import annotations

import array
import contextlib
import gc
import os
import select
import socket
from collections.abc import Callable

_HEADER = 4  # a request's length, little-endian, before its bytes
_MAX_FDS = 5  # the client's connection, its stdin, stdout, stderr and working directory
STARTED, ENDED = b"+", b"-"


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
        message = len(data).to_bytes(_HEADER, "little") + data
        try:
            sent = self.channel.sendmsg([message], [
                (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            self.channel.sendall(message[sent:])
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


def start(module_name: str, validate: Callable[[bytes], dict[str, object]]) -> CommandParent:
    """Fork the command parent; ``validate`` reads a request (``{}`` when malformed)."""
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
            _serve(theirs, module_name, validate)
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    return CommandParent(pid, ours)


def _serve(channel: socket.socket, module_name: str,
           validate: Callable[[bytes], dict[str, object]]) -> None:
    import importlib

    module = importlib.import_module(module_name)  # (and what the commands use)
    gc.collect()
    gc.freeze()  # the workers' collections must not write to these shared pages
    workers: set[int] = set()
    while True:
        ready, _, _ = select.select([channel], [], [], 0.05 if workers else None)
        for pid in list(workers):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            workers.discard(pid)
            _say(channel, ENDED)
        if not ready:
            continue
        request = _receive(channel)
        if request is None:
            return  # the zygote is gone
        data, fds = request
        pid = _fork_worker(channel, module, module_name, validate(data), fds)
        if pid:
            workers.add(pid)
            _say(channel, STARTED)


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


def _fork_worker(channel: socket.socket, module: object, module_name: str,
                 message: dict[str, object], fds: list[int]) -> int:
    """A worker for one request: it answers the client on the connection itself (its
    pid, then the command's exit code)."""
    if message.get("cli") != module_name or len(fds) != _MAX_FDS:
        for fd in fds:
            os.close(fd)
        return 0
    conn_fd, streams = fds[0], fds[1:]
    pid = os.fork()
    if pid == 0:
        try:
            channel.close()
            os.setsid()
            conn = socket.socket(fileno=conn_fd)
            module.serve(conn, message, streams)  # type: ignore[attr-defined]
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    return pid
