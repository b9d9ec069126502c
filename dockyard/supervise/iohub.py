"""A container's stdio while it runs: output into the log and to attached clients,
input from attached clients into the container.

Clients connect to ``attach.sock`` in the container's directory (through
``/proc/self/fd/N/`` so long paths do not hit the 108-byte socket limit) and send
one line first: ``attach`` (then raw input; output comes back framed as Docker's
stdcopy does — 1 byte stream, 3 zero bytes, 4-byte big-endian length — or raw for a
TTY) or ``resize ROWS COLS`` (sets the pty window size; the container gets SIGWINCH).

``attach exit`` is the foreground ``run``'s (and ``attach``'s) way in: output always
framed (a TTY's as stdout), and after the last of it, once the supervisor has
recorded the exit, one frame of stream ``EXIT_STREAM`` carrying the exit code in
decimal — Docker's ``wait`` condition ``next-exit``, on the same connection.  The
client gets every byte the container writes, whatever the log's rotation does: the
output goes to the clients as it is read, before it is written to the log.

A client that waits for the container's end anyway — a foreground ``run --rm``
(``attach exit hook``), an ``rm -f`` (``exit hook``, no output: answered at once
with a ``HOOK_STREAM`` frame ``taken``) — may take the exit hook's work over (the
unmount, ``--rm``'s removal: ``ContainerService.take_exit``): its engine and
database are open already, where the hook would be a fork that opens them.  After
the last exit's code it stays connected; once the supervisor has deleted the
runtime's state, a ``HOOK_STREAM`` frame says ``done`` (or ``failed``), and the
supervisor waits for the client to close: if the container's folder is still there
then (the client died, or failed), the supervisor runs its exit hook as ever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import struct
import termios
import time
from collections.abc import Sequence
from pathlib import Path

from dockyard.stdcopy import EXIT_STREAM, HOOK_STREAM, STDERR, STDOUT, TAKEN, frame
from dockyard.supervise.logfile import JsonLog

STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}


def _close_gently(client: socket.socket) -> None:
    """Drain unread input first: closing with unread bytes makes the kernel send a
    reset, and the client would lose output it has not read yet."""
    with contextlib.suppress(OSError):
        client.setblocking(False)
        while client.recv(65536):
            pass
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        client.close()


def socket_path(bundle_fd: int, name: str = "attach.sock") -> str:
    return f"/proc/self/fd/{bundle_fd}/{name}"


class IOHub:
    def __init__(self, bundle: Path, log: JsonLog, *, tty: bool) -> None:
        self.log = log
        self.tty = tty
        self.bundle_fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY)
        (bundle / "attach.sock").unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path(self.bundle_fd))
        self.listener.listen(8)
        self.clients: list[socket.socket] = []
        self.readable: list[socket.socket] = []  # clients whose input is still open
        self.pending: dict[socket.socket, bytes] = {}
        self.framed: set[socket.socket] = set()  # clients that get frames even with a TTY
        self.waiting: list[socket.socket] = []  # ``attach exit`` clients: get the exit code
        self.taker: socket.socket | None = None  # the client that takes the exit hook over
        self.outputs: dict[int, str] = {}
        self.input_fd: int | None = None  # pty master or stdin pipe write end

    def adopt(self, conn: socket.socket) -> None:
        """A connection made elsewhere (the foreground ``run``'s socket pair), served
        as one accepted here: its first line comes next."""
        self.pending[conn] = b""

    def wait_for_client(self, timeout: float, gone_fd: int | None = None) -> None:
        """Docker attaches before it starts: block until a client says ``attach``, for
        ``timeout`` seconds at most, or until ``gone_fd`` (a pidfd of the process that
        is to attach) says that process died."""
        deadline = time.monotonic() + timeout
        while not self.clients:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            watch: list[int | socket.socket] = [self.listener, *self.pending]
            ready, _, _ = select.select(watch + ([gone_fd] if gone_fd is not None else []),
                                        [], [], left)
            if gone_fd is not None and gone_fd in ready:
                return
            self._service(ready)

    def run(self) -> None:
        """Until every output stream is closed."""
        partial = {fd: b"" for fd in self.outputs}
        while self.outputs:
            watch: list[int | socket.socket] = [*self.outputs, self.listener, *self.readable,
                                                *self.pending]
            ready, _, _ = select.select(watch, [], [])
            for fd in [f for f in ready if isinstance(f, int)]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the pty's last slave closed
                    data = b""
                stream = self.outputs[fd]
                if not data:
                    if partial[fd]:
                        self.log.write(stream, partial[fd])
                    del self.outputs[fd]
                    os.close(fd)
                    continue
                self._broadcast(stream, data)
                *lines, partial[fd] = (partial[fd] + data).split(b"\n")
                for line in lines:
                    self.log.write(stream, line + b"\n")
            self._service([s for s in ready if not isinstance(s, int)])
        for client in self.clients:
            if client not in self.waiting:
                _close_gently(client)
        self.clients.clear()
        self.readable.clear()
        if self.input_fd is not None and not self.tty:
            with contextlib.suppress(OSError):
                os.close(self.input_fd)
            self.input_fd = None

    def exited(self, code: int, *, last: bool = False) -> socket.socket | None:
        """After the exit is recorded: the code to the clients that asked for it.  The
        ``last`` exit's taker of the exit hook stays connected and is returned (one
        that is not the last is told nothing more: its exit hook is not due)."""
        taker, self.taker = self.taker, None
        for client in self.waiting:
            try:
                client.sendall(frame(EXIT_STREAM, str(code).encode()))
            except OSError:
                if client is taker:
                    taker = None  # (gone: the exit hook is ours)
            if client is not taker or not last:
                _close_gently(client)
            self.framed.discard(client)
            for group in (self.clients, self.readable):
                if client in group:
                    group.remove(client)
        self.waiting.clear()
        return taker if last else None

    def _broadcast(self, stream: str, data: bytes) -> None:
        framed = frame(STREAM_IDS[stream], data)
        for client in list(self.clients):
            try:
                client.sendall(framed if client in self.framed else data)
            except OSError:
                self._drop(client)

    def _service(self, ready: Sequence[object]) -> None:
        for item in ready:
            if item is self.listener:
                conn, _ = self.listener.accept()
                self.pending[conn] = b""
            elif isinstance(item, socket.socket) and item in self.pending:
                self._handshake(item)
            elif isinstance(item, socket.socket) and item in self.clients:
                self._client_input(item)

    def _handshake(self, conn: socket.socket) -> None:
        data = conn.recv(4096)
        if not data:
            self.pending.pop(conn)
            conn.close()
            return
        buffered = self.pending[conn] + data
        if b"\n" not in buffered:
            self.pending[conn] = buffered
            return
        line, rest = buffered.split(b"\n", 1)
        self.pending.pop(conn)
        words = line.decode(errors="replace").split()
        if words[:1] == ["resize"] and len(words) == 3 and self.tty and self.input_fd is not None:
            fcntl.ioctl(self.input_fd, termios.TIOCSWINSZ,
                        struct.pack("HHHH", int(words[1]), int(words[2]), 0, 0))
            conn.close()
        elif words == ["exit", "hook"]:  # (``rm -f``'s: no output, told it is taken)
            if self._take_hook(conn):
                with contextlib.suppress(OSError):
                    conn.sendall(frame(HOOK_STREAM, TAKEN))
            else:
                conn.close()
        elif words[:1] == ["attach"]:
            self.clients.append(conn)
            self.readable.append(conn)
            if not self.tty or "exit" in words[1:]:
                self.framed.add(conn)
            if "exit" in words[1:]:
                self.waiting.append(conn)
                if "hook" in words[1:]:
                    self._take_hook(conn)
            if rest:
                self._forward(rest)
        else:
            conn.close()

    def _take_hook(self, conn: socket.socket) -> bool:
        """``conn`` takes the exit hook over, unless another client did first."""
        if self.taker is not None:
            return False
        self.taker = conn
        if conn not in self.waiting:
            self.waiting.append(conn)
            self.framed.add(conn)
        return True

    def _client_input(self, client: socket.socket) -> None:
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:  # the client half-closed: its stdin ended; it still wants output
            self.readable.remove(client)
            if not self.tty and self.input_fd is not None:  # stdin EOF for the container
                os.close(self.input_fd)
                self.input_fd = None
            return
        self._forward(data)

    def _forward(self, data: bytes) -> None:
        if self.input_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.input_fd, data)

    def _drop(self, client: socket.socket) -> None:
        for group in (self.clients, self.readable, self.waiting):
            if client in group:
                group.remove(client)
        if client is self.taker:
            self.taker = None
        self.framed.discard(client)
        with contextlib.suppress(OSError):
            client.close()

    def close(self) -> None:
        """The end: a client still waiting for an exit code hears none (the exit went
        unrecorded, as when the container could not start) and looks at the record."""
        for client in self.waiting:
            _close_gently(client)
        self.waiting.clear()
        self.taker = None
        for conn in self.pending:  # (their first line never read: an ``rm -f`` asking
            conn.close()  # to take the hook over hears no, at once)
        self.pending.clear()
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_path(self.bundle_fd))
        os.close(self.bundle_fd)
