"""A container's published ports, as its supervisor opens them between create and start.

Which way each port goes (see ``firewall`` for the rules and README "Published
ports" for the figures):

* by default the kernel: the port is only bound here (a ``Reservation``: no thread),
  and DNAT rules take every IPv4 connection to the container, from 127.0.0.1, the
  host's other addresses and other containers alike (hairpin); the container's host
  side veth is put in hairpin mode, for a container reaching its own port when
  br_netfilter bridges the DNATed packet back out of the port it came in by;
* a userland proxy (``proxy.open_proxy``) where the kernel cannot: an IPv6 address
  (no route_localnet for ::1), and for every port when the engine setting
  ``userland_proxy`` asks for it (then loopback and containers use the proxy and the
  host's other addresses DNAT, as before the kernel layout existed).

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


def open_ports(container_id: str, network: dict[str, Any]) -> list[OpenPort]:
    """Bind every published port (a taken one fails here, with Docker's words), start
    the proxies, add the DNAT rules; on failure, what was opened is closed again (the
    caller withdraws rules already added, by the container's ID)."""
    endpoint = network["endpoints"][0]
    address = endpoint["address"]
    proxied = bool(network.get("userland_proxy"))
    ports = [firewall.PublishedPort(str(hip), int(hport), str(proto), address, int(cport))
             for hip, hport, cport, proto in network.get("ports", [])]
    opened: list[OpenPort] = []
    try:
        for port in ports:
            if proxied or firewall.is_ipv6(port.host_ip):
                opened.append(open_proxy(port.host_ip, port.host_port, address,
                                         port.target_port, port.protocol))
            else:
                opened.append(Reservation(port.host_ip, port.host_port, port.protocol))
        root = network.get("firewall_root")
        kernel = not proxied
        if root and ports:
            if kernel:
                _hairpin(endpoint["host_ifname"])
            subnet = str(ipaddress.ip_interface(f"{address}/{endpoint['prefix']}").network)
            firewall.publish_ports(root, container_id, ports, kernel=kernel,
                                   bridge=endpoint["bridge"], subnet=subnet)
        for port_ in opened:
            port_.start()
    except BaseException:
        for port_ in opened:
            with contextlib.suppress(OSError):
                port_.close()
        raise
    return opened


def _hairpin(host_ifname: str) -> None:
    """Hairpin mode on the container's bridge port (ours: the veth the engine made)."""
    from pyroute2 import IPRoute  # preloaded by the supervisor's zygote

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=host_ifname)
        if found:  # (an adopted container's veth is there; a vanished one needs none)
            ipr.brport("set", index=found[0], mode=1)
