"""Published ports through a userland proxy (as Docker's docker-proxy), TCP and UDP,
and the bare port reservation of a port the kernel forwards (docker's "dummy proxy").

TCP: a listener on the host address and port accepts connections and splices them
to the container's address and port.  UDP: datagrams from each client go out from
a socket of that client's own, so replies find their way back; a client idle for
``UDP_IDLE`` seconds is forgotten.  The proxy is used where DNAT cannot serve
(IPv6 addresses: no route_localnet for ::1) or when the engine is told to
(``userland_proxy``); otherwise the kernel carries the traffic (``firewall``) and the
port is only bound, so that a port already taken fails at bind time, before the
container starts, and nobody else takes it while the container has it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from dockyard.errors import Conflict

UDP_IDLE = 180.0
_CHUNK = 1 << 20  # the pipe is grown to this, so one splice in and one out move it all
_F_SETPIPE_SZ = 1031
_SPLICE_FLAGS = 0x1  # SPLICE_F_MOVE (not F_MORE: it corks small replies for 200 ms)


def _bound(kind: int, host_ip: str, host_port: int, suffix: str) -> socket.socket:
    """The published port, taken now: a port in use fails before the container starts,
    with Docker's wording.  An IPv6 address (``::1``, ``[::1]``) binds IPv6 only."""
    address = host_ip.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((address, host_port))
    except OSError as exc:
        sock.close()
        raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{host_port}{suffix} failed: port is "
                       "already allocated") from exc
    return sock


class Reservation:
    """A published port the kernel forwards (DNAT): only bound, and for TCP listening
    (so no one else can bind it either), with no thread; connections never reach it,
    as the DNAT happens before."""

    def __init__(self, host_ip: str, host_port: int, protocol: str = "tcp") -> None:
        if protocol == "udp":
            self.sock = _bound(socket.SOCK_DGRAM, host_ip, host_port, "/udp")
        else:
            self.sock = _bound(socket.SOCK_STREAM, host_ip, host_port, "")
            self.sock.listen(1)

    def start(self) -> None:
        pass

    def close(self) -> None:
        self.sock.close()


class TcpProxy:
    """Accepts on ``listener`` and relays each connection (a thread each, both
    directions spliced in the kernel) to the upstream ``connect`` gives: a published
    port's container here, a Service's next ready endpoint in ``kube``."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def connect(self) -> socket.socket | None:
        """The upstream connection for a new client; None refuses it (closed)."""
        raise NotImplementedError

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
            threading.Thread(target=self._splice, args=(client,), daemon=True).start()

    def _splice(self, client: socket.socket) -> None:
        upstream = self.connect()
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        try:
            _relay(client, upstream)
        finally:
            client.close()
            upstream.close()


class PortProxy(TcpProxy):
    def __init__(self, host_ip: str, host_port: int, target_ip: str, target_port: int) -> None:
        self.target = (target_ip, target_port)
        listener = _bound(socket.SOCK_STREAM, host_ip, host_port, "")
        listener.listen(128)
        super().__init__(listener)

    def connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(self.target, timeout=5)
        except OSError:
            return None


def _pipe() -> tuple[int, int]:
    import fcntl

    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep 64 KiB
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _CHUNK)
    return read_end, write_end


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Both directions of a connection in one thread, kernel to kernel: splice(2) through
    a pipe per direction, so the bytes never enter Python (recv/sendall copy twice and
    hold the GIL meanwhile); poll says which side has data."""
    import select

    pipes = {client.fileno(): (_pipe(), upstream), upstream.fileno(): (_pipe(), client)}
    poller = select.poll()
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    open_sides = len(pipes)
    try:
        while open_sides:
            for fd, _event in poller.poll():
                (read_end, write_end), sink = pipes[fd]
                try:
                    moved = os.splice(fd, write_end, _CHUNK, flags=_SPLICE_FLAGS)
                    pending = moved
                    while pending > 0:
                        pending -= os.splice(read_end, sink.fileno(), pending,
                                             flags=_SPLICE_FLAGS)
                except OSError:
                    moved = 0
                if moved == 0:  # end of this direction: pass the half-close on
                    poller.unregister(fd)
                    open_sides -= 1
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
    finally:
        for (read_end, write_end), _sink in pipes.values():
            os.close(read_end)
            os.close(write_end)


class UdpProxy:
    def __init__(self, host_ip: str, host_port: int, target_ip: str, target_port: int) -> None:
        self.target = (target_ip, target_port)
        self.listener = _bound(socket.SOCK_DGRAM, host_ip, host_port, "/udp")
        self._clients: dict[tuple[str, int], socket.socket] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            for upstream in self._clients.values():
                upstream.close()
            self._clients.clear()

    def _serve(self) -> None:
        while True:
            try:
                data, client = self.listener.recvfrom(65535)
            except OSError:
                return
            with self._lock:
                upstream = self._clients.get(client)
                if upstream is None:
                    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    upstream.settimeout(UDP_IDLE)
                    upstream.connect(self.target)
                    self._clients[client] = upstream
                    threading.Thread(target=self._replies, args=(client, upstream),
                                     daemon=True).start()
            with contextlib.suppress(OSError):
                upstream.send(data)

    def _replies(self, client: tuple[str, int], upstream: socket.socket) -> None:
        try:
            while True:
                data = upstream.recv(65535)
                self.listener.sendto(data, client)
        except OSError:
            pass
        finally:
            with self._lock:
                if self._clients.get(client) is upstream:
                    del self._clients[client]
            upstream.close()


def open_proxy(host_ip: str, host_port: int, target_ip: str, target_port: int,
               protocol: str = "tcp") -> PortProxy | UdpProxy:
    """A relay from the host's port to the container's (not yet started)."""
    if protocol == "udp":
        return UdpProxy(host_ip, host_port, target_ip, target_port)
    return PortProxy(host_ip, host_port, target_ip, target_port)
