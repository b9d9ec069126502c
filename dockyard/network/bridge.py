"""Bridges and veth pairs through netlink (pyroute2).

``ensure_bridge`` makes the network's bridge with its gateway address;
``attach`` puts a container on it: a veth pair whose host end joins the bridge and
whose other end moves into the container's network namespace (found by the init's
pid) as ``eth0`` with the container's address and a default route.  The kernel
deletes the pair when the container's namespace is dismantled, but lazily: the engine
deletes what is left when the container ends (``engine.container_network``), and a
restart finds a stale pair of its last run still there at times (``attach``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from typing import Any, NamedTuple

from dockyard import trace
from dockyard.errors import InternalError


class Attachment(NamedTuple):
    bridge: str
    address: str  # "10.213.0.5"
    prefix: int
    gateway: str
    host_ifname: str
    ifname: str = "eth0"  # inside the container
    default_route: bool = True  # the first non-internal network gives the default route
    hairpin: bool = False  # its published ports are DNATed to it (network.publish)


def _ipr() -> Any:
    from pyroute2 import IPRoute  # deferred: only networked containers pay for it

    return IPRoute()


NET_ADDR_SET = 3  # /sys/class/net/X/addr_assign_type: the address was set, not derived


def ensure_bridge(name: str, gateway: str, prefix: int, alias: str = "") -> None:
    """Create the bridge unless it is there, marked with ``alias`` (its root's, so
    ``system reset`` finds it by that root alone).  The check needs no netlink:
    importing pyroute2 alone costs ~130 ms, which every container start would
    otherwise pay.

    The bridge's MAC address is set, as Docker sets its bridges': a bridge left to
    itself takes the lowest MAC of its ports, so a container that comes or goes
    changes the gateway's MAC under every other container on the network, whose ARP
    entries then send replies to an address no one has until they expire (a request
    to a container hung for seconds while a rollout replaced its neighbours).  A
    bridge made before this is fixed on its next use, keeping its current address."""
    if bridge_ready(name):
        return
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            ipr.link("add", ifname=name, kind="bridge", address=_random_mac())
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        if not _address_set(name):
            current = _read(f"/sys/class/net/{name}/address")
            ipr.link("set", index=index, address=current if current.strip("0:") else
                     _random_mac())
        if alias:
            ipr.link("set", index=index, ifalias=alias)
        addresses = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)}
        if gateway not in addresses:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefix)
        ipr.link("set", index=index, state="up")


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def bridge_ready(name: str) -> bool:
    """The bridge is there with its address set: nothing for ``ensure_bridge`` to do
    (two reads of sysfs, no netlink)."""
    return os.path.exists(f"/sys/class/net/{name}/bridge") and _address_set(name)


def _address_set(name: str) -> bool:
    return _read(f"/sys/class/net/{name}/addr_assign_type") == str(NET_ADDR_SET)


def _random_mac() -> str:
    """A random unicast, locally administered MAC address (02:…)."""
    return ":".join(f"{byte:02x}" for byte in (0x02, *os.urandom(5)))


def delete_link(name: str) -> bool:
    """Remove a bridge, or a container's endpoint by its host-side veth (deleting one end
    deletes the pair); False when there is no such link.  One RTM_DELLINK
    (``network.rtnl``): pyroute2's import alone would cost ~100 ms of a ``down``."""
    from dockyard.network import rtnl

    try:  # (an ioctl in this process's network namespace; /sys may show another's)
        index = socket.if_nametoindex(name)
    except OSError:
        return False
    code = rtnl.delete_link(index)
    if rtnl.gone(code):  # gone meanwhile
        return False
    if code:
        raise InternalError(f"deleting link {name}: {os.strerror(code)}")
    return True


def forget_neighbour(bridge: str, address: str) -> None:
    """Drop the host's ARP entry for ``address`` on ``bridge`` (ours): an address
    leased again to a new container has a new MAC, and a stale entry would black-hole
    the host's connections to it until the entry expires (up to ~45 s)."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if found:
            with contextlib.suppress(Exception):  # no entry: nothing to forget
                ipr.neigh("del", dst=address, ifindex=found[0])


def _index_of(name: str) -> int:
    """A link's index in our network namespace, 0 if there is none: one ioctl, where
    pyroute2's ``link_lookup`` dumps every link of the host and parses each (~1 ms
    with a few links, more with a veth per container)."""
    import socket

    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def attach(pid: int, attachment: Attachment) -> None:
    """Wire the container up: the pair from here, its inner end's address and routes
    by this thread, which joins the container's namespace and comes back
    (``network.netns``: no fork, no thread).

    The pair is made with its inner end already in the container's namespace and
    already named (``ethN``): moving a link between namespaces waits for an RCU grace
    period (``synchronize_net``, 20-30 ms here) and is the one slow step of a start
    on a bridge; a link born in its namespace is not moved (~2.5 ms in all).  If the
    container died meanwhile, the kernel makes neither end.  The host end is born up
    and a port of the bridge (one request); the links are set up by ioctl, and the
    requests go through ``network.rtnl`` (no pyroute2 session: ~7 ms of CPU less)."""
    from dockyard.network.linkup import set_up
    from dockyard.network.netns import in_netns_of
    from dockyard.network.rtnl import Rtnl

    bridge = _index_of(attachment.bridge)
    if not bridge:
        raise InternalError(f"network bridge {attachment.bridge} does not exist")
    if _index_of(attachment.host_ifname):  # its last run's, not yet dismantled
        delete_link(attachment.host_ifname)
    with Rtnl() as rtnl:
        rtnl.add_veth(attachment.host_ifname, attachment.ifname, pid, bridge)
        try:
            host = _index_of(attachment.host_ifname)
            if attachment.hairpin:  # a packet DNATed back to the port it came in by
                rtnl.set_hairpin(host)
            alias = link_alias(attachment.bridge)
            if alias:  # the bridge's root owns the pair too
                rtnl.set_alias(host, alias)
        except BaseException:
            # the host end is ours: delete the pair instead of leaving it behind
            with contextlib.suppress(Exception):
                delete_link(attachment.host_ifname)
            raise
    trace.mark("attach: veth pair made")

    def inside() -> None:
        set_up("lo")
        with Rtnl() as rtnl:  # (a socket of the container's namespace)
            rtnl.add_address(_index_of(attachment.ifname), attachment.address,
                             attachment.prefix)
            set_up(attachment.ifname)  # (after its address: then the route can use it)
            if attachment.default_route:
                rtnl.add_default_route(attachment.gateway)

    try:
        in_netns_of(pid, inside)
    except BaseException:  # the host end is ours: not left on the bridge
        with contextlib.suppress(Exception):
            delete_link(attachment.host_ifname)
        raise
    trace.mark("attach: address and route set")


def loopback_up(pid: int) -> None:
    """``--network none``: a namespace with only ``lo``, up (as Docker leaves it), by
    this thread, which joins it and comes back (``network.netns``)."""
    from dockyard.network.linkup import set_up
    from dockyard.network.netns import in_netns_of

    in_netns_of(pid, lambda: set_up("lo"))
    trace.mark("attach: loopback up")


def link_alias(name: str) -> str:
    """A link's alias ("" for none, or no such link), from sysfs."""
    try:
        with open(f"/sys/class/net/{name}/ifalias") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def links_of(alias: str, bridges: set[str]) -> list[str]:
    """The host's links that carry ``alias`` or are one of ``bridges`` or a port of
    one: bridges first, so deleting in this order leaves no port to look up."""
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []
    found = []
    for name in names:
        try:
            master = os.path.basename(os.readlink(f"/sys/class/net/{name}/master"))
        except OSError:
            master = ""
        if name in bridges or master in bridges or (alias and link_alias(name) == alias):
            found.append(name)
    return sorted(found, key=lambda n: not os.path.exists(f"/sys/class/net/{n}/bridge"))


def hosts_in(subnet: str) -> list[str]:
    return [str(h) for h in ipaddress.ip_network(subnet).hosts()]
