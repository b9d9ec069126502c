"""A container's published ports, as its supervisor opens them between create and start.

Which way each port goes (see ``firewall`` for the rules and README "Published
ports" for the figures):

* by default the kernel: the port is only bound here (a ``Reservation``: no thread),
  and DNAT rules take every IPv4 connection to the container, from 127.0.0.1, the
  host's other addresses and other containers alike (hairpin: the engine asks for
  the container's bridge port in hairpin mode, ``bridge.Attachment.hairpin``, for a
  container reaching its own port when br_netfilter bridges the DNATed packet back
  out of the port it came in by);
* a userland proxy (``proxy.open_proxy``) where the kernel cannot: an IPv6 address
  (no route_localnet for ::1; dockyard writes no ip6tables rules), every port when
  iptables is missing, and every port when the engine setting ``userland_proxy`` asks
  for it (then loopback and containers use the proxy and the host's other addresses
  DNAT, as before the kernel layout existed).

``network`` is the dict the engine gives the supervisor (``network.json``): its
``ports`` ([host_ip, host_port, container_port, protocol]), ``endpoints`` (the first
one's address is the ports' target), ``firewall_root`` and ``userland_proxy``.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any, Protocol

from dockyard.network import firewall
from dockyard.network.proxy import Reservation, open_proxy


class OpenPort(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...


def open_ports(network: dict[str, Any]) -> list[OpenPort]:
    """Bind every published port (a taken one fails here, with Docker's words) and
    start the proxies; on failure, what was opened is closed again."""
    address = network["endpoints"][0]["address"]
    proxied = _proxied(network)
    opened: list[OpenPort] = []
    try:
        for port in _ports(network):
            if proxied or firewall.is_ipv6(port.host_ip):
                opened.append(open_proxy(port.host_ip, port.host_port, address,
                                         port.target_port, port.protocol))
            else:
                opened.append(Reservation(port.host_ip, port.host_port, port.protocol))
        for port_ in opened:
            port_.start()
    except BaseException:
        for port_ in opened:
            with contextlib.suppress(OSError):
                port_.close()
        raise
    return opened


def route_ports(container_id: str, network: dict[str, Any]) -> int:
    """Add the ports' DNAT rules (and what the layout needs on the bridge); the caller
    withdraws them by the container's ID.  Returns how many ports were given.  The
    supervisor runs this in a throw-away fork: listing and parsing the rules would
    otherwise un-share ~1 MiB of its pages for the container's whole life."""
    ports = _ports(network)
    root = network.get("firewall_root")
    if root and ports:
        endpoint = network["endpoints"][0]
        subnet = ipaddress.ip_interface(f"{endpoint['address']}/{endpoint['prefix']}").network
        firewall.publish_ports(root, container_id, ports, kernel=not _proxied(network),
                               bridge=endpoint["bridge"], subnet=str(subnet))
    return len(ports)


def _proxied(network: dict[str, Any]) -> bool:
    """Whether loopback and containers go through the proxy: when asked, or when there
    is no iptables to DNAT with (no rules: the proxy serves every address then)."""
    return bool(network.get("userland_proxy")) or not (
        network.get("firewall_root") and firewall.available())


def _ports(network: dict[str, Any]) -> list[firewall.PublishedPort]:
    address = network["endpoints"][0]["address"]
    return [firewall.PublishedPort(str(hip), int(hport), str(proto), address, int(cport))
            for hip, hport, cport, proto in network.get("ports", [])]
