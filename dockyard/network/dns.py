"""The embedded DNS server of user networks: container names and aliases → addresses.

Each supervisor of a container on a user network serves DNS on that network's
gateway address, port 53 (UDP), with SO_REUSEPORT, so every supervisor on the
network shares the port and the kernel spreads queries over them; the last one
to exit takes the listener with it.  Names come from the network's name table
(``network.names``); anything else is forwarded to the host's resolvers (from the
host's network namespace, so loopback resolvers work) and relayed back.

The codec is written here rather than taken from dnspython: it needs only the
header, one question and A answers, and dnspython's import (~50 ms, several MB)
would land in every supervisor.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import NamedTuple

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
TTL = 600


class Question(NamedTuple):
    ident: int
    flags: int
    name: str
    qtype: int
    qclass: int
    end: int  # offset just past the question


def parse_question(packet: bytes) -> Question | None:
    """The first question of a query; None if the packet is not a plain query."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or (flags >> 11) & 0xF or qdcount < 1:
        return None  # a response, or not a standard query
    labels = []
    offset = 12
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(packet):
            return None  # compression is not used in questions
        labels.append(packet[offset:offset + length].decode("ascii", errors="replace"))
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[offset:offset + 4])
    return Question(ident, flags, ".".join(labels), qtype, qclass, offset + 4)


def build_response(packet: bytes, question: Question, addresses: list[str],
                   rcode: int = 0) -> bytes:
    """An answer to ``question`` (its text copied from the query) with A records."""
    answers = b""
    if question.qtype == TYPE_A and rcode == 0:
        for address in addresses:
            answers += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + \
                socket.inet_aton(address)
        count = len(addresses)
    else:
        count = 0
    flags = 0x8000 | 0x0400 | (question.flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
    header = struct.pack("!HHHHHH", question.ident, flags, 1, count, 0, 0)
    return header + packet[12:question.end] + answers


class DnsServer:
    """Listeners (one per gateway address) answering from ``lookup(name, client
    address)`` and forwarding the rest to ``upstreams``."""

    def __init__(self, lookup: Callable[[str, str], list[str]], upstreams: list[str]) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self._sockets: dict[str, socket.socket] = {}
        self._lock = threading.Lock()

    def listen(self, address: str, port: int = 53) -> None:
        with self._lock:
            if address in self._sockets:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # the gateway address may not be up yet on a brand-new bridge
            sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
            sock.bind((address, port))
            self._sockets[address] = sock
        threading.Thread(target=self._serve, args=(sock,), daemon=True,
                         name=f"dns-{address}").start()

    def close(self) -> None:
        with self._lock:
            sockets, self._sockets = list(self._sockets.values()), {}
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                packet, client = sock.recvfrom(4096)
            except OSError:
                return
            with contextlib.suppress(OSError):
                reply = self.answer(packet, client[0])
                if reply:
                    sock.sendto(reply, client)

    def answer(self, packet: bytes, client: str) -> bytes | None:
        """The reply to ``client``'s query: its containers' names, else the upstreams'."""
        question = parse_question(packet)
        if question is None:
            return None
        if question.qclass == CLASS_IN:
            addresses = self.lookup(question.name, client)
            if addresses:
                return build_response(packet, question, addresses)
        forwarded = self._forward(packet)
        if forwarded is not None:
            return forwarded
        return build_response(packet, question, [], RCODE_SERVFAIL)

    def _forward(self, packet: bytes) -> bytes | None:
        for upstream in self.upstreams:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2.0)
                try:
                    sock.sendto(packet, (upstream, 53))
                    reply, _ = sock.recvfrom(4096)
                except OSError:
                    continue
                if reply[:2] == packet[:2]:
                    return reply
        return None


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    servers = []
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver" and ":" not in fields[1]:
                    servers.append(fields[1])
    except OSError:
        pass
    return servers
