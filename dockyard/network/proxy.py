"""Published ports through a userland TCP proxy (as Docker's docker-proxy).

A listener on the host address and port accepts connections and splices them to
the container's address and port.  Chosen over DNAT rules for now: it needs no
iptables (so it cannot disturb another program's chains), answers on 127.0.0.1,
and a port already taken fails at bind time with a clear error before the
container starts.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from dockyard.errors import Conflict


class PortProxy:
    def __init__(self, host_ip: str, host_port: int, target_ip: str, target_port: int) -> None:
        self.target = (target_ip, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host_ip or "0.0.0.0", host_port))
        except OSError as exc:
            self.listener.close()
            raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{host_port} failed: port is "
                           "already allocated") from exc
        self.listener.listen(128)
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
            threading.Thread(target=self._splice, args=(client,), daemon=True).start()

    def _splice(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pump = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        pump.start()
        _copy(client, upstream)
        pump.join()
        client.close()
        upstream.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
