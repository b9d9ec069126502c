"""A Service's ClusterIP: a TCP proxy listening inside the Service holder's network
namespace (its address and DNS names on the project network) while it has ready
endpoints, spreading each new connection over them, round robin."""

from __future__ import annotations

import collections
import itertools
import socket
import threading
from collections.abc import Callable

from dockyard.network.netns import in_netns_of
from dockyard.network.proxy import TcpProxy


def listen_in_netns(pid: int, port: int) -> socket.socket:
    """A listening socket on ``port`` in the network namespace of process ``pid`` (a
    socket stays in the namespace it was made in: ``network.netns``)."""
    def listen() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(128)
        return sock

    return in_netns_of(pid, listen)


class ServiceProxy(TcpProxy):
    """Listens on ``port`` in the network namespace of process ``pid`` (the
    Service's holder) while the Service has ready endpoints, as kube-proxy rejects
    connections to a Service without any; each connection goes to the next of
    ``endpoints()`` (addresses of ready pods) on ``target_port``."""

    def __init__(self, pid: int, port: int, target_port: int,
                 endpoints: Callable[[], list[str]]) -> None:
        self.pid = pid
        self.port = port
        self.target_port = target_port
        self.endpoints = endpoints
        self._turn = itertools.count()
        self.listening = False
        self.active: collections.Counter[str] = collections.Counter()  # address → relays
        self._lock = threading.Lock()
        self._local = threading.local()  # the endpoint of this thread's connection

    def start(self) -> None:
        """Listening follows the endpoints: see ``follow``."""

    def follow(self, has_endpoints: bool) -> None:
        if has_endpoints and not self.listening:
            super().__init__(listen_in_netns(self.pid, self.port))
            super().start()
            self.listening = True
        elif not has_endpoints and self.listening:
            super().close()
            self.listening = False

    def close(self) -> None:
        if self.listening:
            super().close()
            self.listening = False

    def _splice(self, client: socket.socket) -> None:
        """One connection, counted against its endpoint while it lasts (so a pod on
        its way out is removed once its connections are done)."""
        self._local.address = None
        try:
            super()._splice(client)
        finally:
            if self._local.address is not None:
                with self._lock:
                    self.active[self._local.address] -= 1

    def busy(self, addresses: set[str]) -> int:
        """Connections under way to any of ``addresses``."""
        with self._lock:
            return sum(self.active[a] for a in addresses)

    def connect(self) -> socket.socket | None:
        ready = self.endpoints()
        if not ready:
            return None
        start = next(self._turn)
        for i in range(len(ready)):
            address = ready[(start + i) % len(ready)]
            # a pod on the bridge answers at once: one that does not within half a
            # second is passed over for the next (the last one gets 2 s)
            wait = 2.0 if i == len(ready) - 1 else 0.5
            try:
                upstream = socket.create_connection((address, self.target_port), timeout=wait)
            except OSError:
                continue
            with self._lock:
                self.active[address] += 1
            self._local.address = address
            return upstream
        return None
