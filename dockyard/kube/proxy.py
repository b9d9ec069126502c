"""A Service's ClusterIP: a TCP proxy listening inside the Service holder's network
namespace (its address and DNS names on the project network), spreading each new
connection over the ready endpoints, round robin."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
from collections.abc import Callable

from dockyard.runtime.linux import syscalls


def listen_in_netns(pid: int, port: int) -> socket.socket:
    """A listening socket on ``port`` in the network namespace of process ``pid``
    (made by a short-lived thread that joins it: setns(CLONE_NEWNET) moves only the
    calling thread, and a socket stays in the namespace it was made in)."""
    made: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, syscalls.CLONE_NEWNET, f"/proc/{pid}/ns/net")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port))
            sock.listen(128)
            made.append(sock)
        except BaseException as exc:  # handed to the caller below
            made.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class ServiceProxy:
    """Accepts on ``listener``; each connection goes to the next of ``endpoints()``
    (addresses of ready pods) on ``target_port``."""

    def __init__(self, listener: socket.socket, target_port: int,
                 endpoints: Callable[[], list[str]]) -> None:
        self.listener = listener
        self.target_port = target_port
        self.endpoints = endpoints
        self._turn = itertools.count()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            client.close()  # no ready endpoint: the connection is refused by closing
            return
        pump = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        pump.start()
        _pump(client, upstream)
        pump.join()
        client.close()
        upstream.close()

    def _connect(self) -> socket.socket | None:
        ready = self.endpoints()
        if not ready:
            return None
        start = next(self._turn)
        for i in range(len(ready)):
            address = ready[(start + i) % len(ready)]
            try:
                return socket.create_connection((address, self.target_port), timeout=2)
            except OSError:
                continue
        return None


def _pump(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(None)
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
