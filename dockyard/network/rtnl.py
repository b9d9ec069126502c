"""Requests to the kernel's routing netlink (NETLINK_ROUTE) on a socket of our own.

A container's start on a bridge asks the kernel for a few links, an address and a
route.  pyroute2's ``IPRoute`` runs each request through an asyncio event loop of
its own (~1-2 ms of CPU a request) and costs ~3 ms to open; a start paid ~10 ms of
CPU for five requests and two sessions.  Here the messages are still pyroute2's —
its ``ifinfmsg``, ``ifaddrmsg`` and ``rtmsg`` classes encode them, the nested
attributes of a veth's peer included — but each is one ``send`` and one ``recv`` of
its acknowledgement on a plain socket (~0.3 ms each).

``Rtnl`` is bound to the network namespace of the thread that opened it (a socket
keeps the namespace it was made in): open another after ``setns``.  The pyroute2
classes are imported by the calls that encode, never by this module: ``delete``
(``system reset``, ``network rm``) needs no encoder and must not pay pyroute2's
import (~100 ms).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any

from dockyard.errors import InternalError

_HEADER = struct.Struct("=LHHLL")  # struct nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg: family, type, index, flags, change
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1


class Rtnl:
    """A NETLINK_ROUTE socket in the calling thread's network namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   0)  # (protocol 0: NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sequence = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._sock.close()

    def request(self, kind: int, payload: bytes, flags: int = 0) -> int:
        """Send one message of type ``kind`` and wait for its acknowledgement: 0, or
        the errno the kernel refused it with."""
        self._sequence += 1
        header = _HEADER.pack(_HEADER.size + len(payload), kind,
                              NLM_F_REQUEST | NLM_F_ACK | flags, self._sequence, 0)
        self._sock.send(header + payload)
        while True:
            reply = self._sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(reply):
                length, reply_kind, _flags, sequence, _pid = _HEADER.unpack_from(reply, offset)
                if reply_kind == NLMSG_ERROR and sequence == self._sequence:
                    (code,) = struct.unpack_from("=i", reply, offset + _HEADER.size)
                    return -int(code)
                offset += max(length, _HEADER.size)

    def checked(self, what: str, kind: int, payload: bytes, flags: int = 0) -> None:
        """``request``, with a refusal raised as InternalError naming ``what``."""
        code = self.request(kind, payload, flags)
        if code:
            raise InternalError(f"{what}: {os.strerror(code)}")

    def add_veth(self, name: str, peer: str, peer_netns_pid: int, master: int) -> None:
        """A veth pair: ``name`` here, up and a port of the bridge ``master`` (by
        index), ``peer`` born in the network namespace of ``peer_netns_pid``."""
        self.checked(f"making the veth pair {name}", RTM_NEWLINK, _link_message(
            flags=IFF_UP, attrs=[
                ("IFLA_IFNAME", name), ("IFLA_MASTER", master),
                ("IFLA_LINKINFO", {"attrs": [
                    ("IFLA_INFO_KIND", "veth"),
                    ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": [
                        ("IFLA_IFNAME", peer), ("IFLA_NET_NS_PID", peer_netns_pid)]})]})]})]),
            NLM_F_CREATE | NLM_F_EXCL)

    def set_hairpin(self, index: int) -> None:
        """The bridge port ``index`` in hairpin mode: a frame may leave by the port it
        came in by (``bridge link set dev X hairpin on``; sysfs's knob is not there
        when /sys belongs to another network namespace)."""
        self.checked(f"setting link {index} in hairpin mode", RTM_NEWLINK, _link_message(
            index=index, attrs=[("IFLA_LINKINFO", {"attrs": [
                ("IFLA_INFO_SLAVE_KIND", "bridge"),
                ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]})]})]))

    def set_alias(self, index: int, alias: str) -> None:
        self.checked(f"naming link {index} {alias!r}", RTM_NEWLINK,
                     _link_message(index=index, attrs=[("IFLA_IFALIAS", alias)]))

    def add_address(self, index: int, address: str, prefix: int) -> None:
        """An IPv4 address on the link ``index`` (as ``ip addr add A/P dev X``)."""
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

        msg = ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, prefix, index
        msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        self.checked(f"adding address {address}/{prefix}", RTM_NEWADDR, _body(msg),
                     NLM_F_CREATE | NLM_F_EXCL)

    def add_default_route(self, gateway: str) -> None:
        """``ip route add default via GATEWAY`` in the main table."""
        from pyroute2.netlink.rtnl.rtmsg import rtmsg

        msg = rtmsg()
        msg["family"], msg["dst_len"], msg["table"] = socket.AF_INET, 0, 254  # main
        msg["proto"], msg["scope"], msg["type"] = 3, 0, 1  # boot, universe, unicast
        msg["attrs"] = [("RTA_GATEWAY", gateway)]
        self.checked(f"adding the default route via {gateway}", RTM_NEWROUTE, _body(msg),
                     NLM_F_CREATE | NLM_F_EXCL)


def delete_link(index: int) -> int:
    """RTM_DELLINK of the link ``index``: 0, or the errno the kernel answered."""
    with Rtnl() as rtnl:
        return rtnl.request(RTM_DELLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0))


def gone(code: int) -> bool:
    """An errno that says the link is not there (deleted meanwhile)."""
    return code in (errno.ENODEV, errno.ENOENT)


def _link_message(*, index: int = 0, flags: int = 0, attrs: list[Any]) -> bytes:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["family"], msg["index"], msg["flags"], msg["change"] = 0, index, flags, flags
    msg["attrs"] = attrs
    return _body(msg)


def _body(msg: Any) -> bytes:
    """The message's encoding without pyroute2's header (``request`` adds ours)."""
    msg.encode()
    return bytes(msg.data[_HEADER.size:])
