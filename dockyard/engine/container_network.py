"""A container's place on its networks: which networks (its ``--network`` plus any it
was connected to), which address and names on each, which ports it publishes; the
result goes to the supervisor (which wires it up between create and start) and is
kept in ``network.json`` for inspect, ps and port."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from dockyard.engine.records import ContainerRecord
from dockyard.errors import InternalError, InvalidArgument, NotFound
from dockyard.network import names as name_table

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.network.store import NetworkRecord


def uses_networks(mode: str) -> bool:
    return mode not in ("none", "host") and not mode.startswith("container:")


def dns_names(record: ContainerRecord, aliases: tuple[str, ...]) -> tuple[str, ...]:
    """What the embedded DNS answers for a container: its name, short ID and aliases."""
    return (record.name, record.id[:12], *aliases)


def attach_config(service: ContainerService, record: ContainerRecord) -> dict[str, Any]:
    config = _allocate(service, record)
    (service.bundle(record.id) / "network.json").write_text(json.dumps(config))
    return config


def _networks_of(service: ContainerService, record: ContainerRecord) -> list[NetworkRecord]:
    networks = service.networks
    primary = networks.get(record.spec.network_mode)
    ordered = [primary]
    for endpoint in networks.endpoints(container_id=record.id):
        if endpoint.network == primary.name or endpoint.network in {n.name for n in ordered}:
            continue
        try:
            ordered.append(networks.get(endpoint.network))
        except NotFound:  # removed meanwhile (cannot happen while leased, but be safe)
            networks.ipam.release(record.id, endpoint.network)
    return ordered


def _allocate(service: ContainerService, record: ContainerRecord) -> dict[str, Any]:
    networks = service.networks
    spec = record.spec
    if spec.ip_address and spec.network_mode == "bridge":
        raise InvalidArgument("user specified IP address is supported on user defined "
                              "networks only")
    endpoints = []
    route_given = False
    for index, network in enumerate(_networks_of(service, record)):
        networks.ensure_up(network)
        existing = networks.endpoints(network=network.name, container_id=record.id)
        aliases = spec.network_aliases if index == 0 else (
            existing[0].names[2:] if existing else ())
        names = dns_names(record, aliases)
        address = networks.ipam.lease(network.name, network.subnet, network.gateway, record.id,
                                      requested=spec.ip_address if index == 0 else None,
                                      names=names)
        endpoints.append({
            "network": network.name, "network_id": network.id, "bridge": network.bridge,
            "address": address, "prefix": network.prefix, "gateway": network.gateway,
            "host_ifname": f"dy{record.id[:10]}{index}", "ifname": f"eth{index}",
            "default_route": not network.internal and not route_given,
            "internal": network.internal, "dns": network.name != "bridge",
            "aliases": list(aliases)})
        route_given = route_given or not network.internal
    default_ip = networks.config.default_bind_ip  # like dockerd's --ip
    ports = []
    for p in spec.ports:
        host_ip = p.host_ip or default_ip
        ports.append([host_ip, p.host_port or _free_port(host_ip, p.protocol),
                      p.container_port, p.protocol])
    if spec.publish_all:
        published = {(p[2], p[3]) for p in ports}
        for port, proto in sorted(_exposed_ports(service, record)):
            if (port, proto) not in published:
                ports.append([default_ip, _free_port(default_ip, proto), port, proto])
    if endpoints:  # the ports lead to the first; DNATed, a packet may come back by its port
        endpoints[0]["hairpin"] = bool(ports) and not networks.config.userland_proxy
    from dockyard.network.dns import host_resolvers

    return {"endpoints": endpoints, "ports": ports,
            # where the supervisor adds the ports' DNAT rules (this root's chains), and
            # whether loopback and containers go through a proxy instead (network.publish)
            "firewall_root": str(service.layout.root),
            "userland_proxy": networks.config.userland_proxy,
            "dns": {"listen": [e["gateway"] for e in endpoints if e["dns"]],
                    "tables": str(name_table.table_path(service.layout.run_dir, "x").parent),
                    "upstreams": list(spec.dns) or host_resolvers()}}


def publish_names(service: ContainerService, record: ContainerRecord,
                  config: dict[str, Any]) -> None:
    """Put the (starting) container in the name tables of its user networks."""
    for endpoint in config["endpoints"]:
        if endpoint["dns"]:
            name_table.publish(service.networks.names_path(endpoint["network"]), record.id,
                               endpoint["address"],
                               dns_names(record, tuple(endpoint["aliases"])))


def leave_networks(service: ContainerService, container_id: str) -> None:
    """A container that ended leaves its networks: its names go from their DNS, and its
    veth pairs go now.  The kernel deletes a pair by itself once the container's network
    namespace is dismantled, but that is deferred work (``cleanup_net``) which lags, on
    a busy host by seconds: meanwhile the dead namespace still answers ARP for the
    address, which may already be leased to a new container, and the host end is
    still there for ``rm -f``'s caller to find.  Only a pair still there is deleted
    (~15-25 ms: an RCU grace period); usually the kernel was first (one ``open``)."""
    from dockyard.network.bridge import delete_link

    try:
        config = json.loads((service.bundle(container_id) / "network.json").read_text())
    except (OSError, ValueError):
        return
    for endpoint in config.get("endpoints", []):
        name_table.withdraw(service.networks.names_path(endpoint["network"]), container_id)
        with contextlib.suppress(InternalError):  # refused: the kernel's cleanup takes it
            delete_link(endpoint["host_ifname"])


def _exposed_ports(service: ContainerService, record: ContainerRecord) -> set[tuple[int, str]]:
    exposed = service.images.container_config(record.image_id).get("ExposedPorts")
    result = set()
    for key in [*(exposed or {}), *record.spec.expose]:
        port, _, proto = key.partition("/")
        if (proto or "tcp") in ("tcp", "udp") and port.isdigit():
            result.add((int(port), proto or "tcp"))
    return result


def connect(service: ContainerService, record: ContainerRecord, network_ref: str,
            aliases: tuple[str, ...] = (), ip: str | None = None) -> None:
    """``network connect``: lease now; a running container gets the interface now too."""

    networks = service.networks
    network = networks.get(network_ref)
    if not uses_networks(record.spec.network_mode):
        raise InvalidArgument(f"container {record.name} uses --network "
                              f"{record.spec.network_mode}: it cannot join other networks")
    if networks.endpoints(network=network.name, container_id=record.id) or (
            networks.get(record.spec.network_mode).name == network.name):
        raise InvalidArgument(f"endpoint with name {record.name} already exists in network "
                              f"{network.name}")
    networks.ensure_up(network)
    names = dns_names(record, aliases)
    address = networks.ipam.lease(network.name, network.subnet, network.gateway, record.id,
                                  requested=ip, names=names)
    if record.state != "running" or not record.pid:
        _network_event(service, "connect", network, record)
        return
    path = service.bundle(record.id) / "network.json"
    config = json.loads(path.read_text())
    index = max((int(e["ifname"][3:]) for e in config["endpoints"]), default=-1) + 1
    endpoint: dict[str, Any] = {
                "network": network.name, "network_id": network.id, "bridge": network.bridge,
                "address": address, "prefix": network.prefix, "gateway": network.gateway,
                "host_ifname": f"dy{record.id[:10]}{index}", "ifname": f"eth{index}",
                "default_route": False, "internal": network.internal,
                "dns": network.name != "bridge", "aliases": list(aliases)}
    from dockyard.network.bridge import Attachment, attach

    attachment = Attachment(network.bridge, address, network.prefix, network.gateway,
                            f"dy{record.id[:10]}{index}", f"eth{index}", False)
    try:
        attach(record.pid, attachment)
    except Exception as exc:
        networks.ipam.release(record.id, network.name)
        raise RuntimeError(str(exc)) from exc
    config["endpoints"].append(endpoint)
    path.write_text(json.dumps(config))
    if endpoint["dns"]:
        name_table.publish(networks.names_path(network.name), record.id, address, names)
        if record.supervisor_pid:  # its supervisor starts serving DNS on the new network
            import signal

            from dockyard.supervise.process import send_signal

            send_signal(record.supervisor_pid, record.supervisor_start, signal.SIGUSR2)
    _network_event(service, "connect", network, record)


def disconnect(service: ContainerService, record: ContainerRecord, network_ref: str) -> None:
    networks = service.networks
    network = networks.get(network_ref)
    if not networks.endpoints(network=network.name, container_id=record.id):
        raise InvalidArgument(f"container {record.name} is not connected to network "
                              f"{network.name}")
    path = service.bundle(record.id) / "network.json"
    if record.state == "running" and path.exists():
        from dockyard.network.bridge import delete_link

        config = json.loads(path.read_text())
        for endpoint in [e for e in config["endpoints"] if e["network"] == network.name]:
            delete_link(endpoint["host_ifname"])
            config["endpoints"].remove(endpoint)
        path.write_text(json.dumps(config))
    name_table.withdraw(networks.names_path(network.name), record.id)
    networks.ipam.release(record.id, network.name)
    _network_event(service, "disconnect", network, record)


def _network_event(service: ContainerService, action: str, network: Any,
                   record: ContainerRecord) -> None:
    service.events.record("network", action, network.id,
                          {"container": record.id, "name": network.name, "type": "bridge"})


def _free_port(host_ip: str, protocol: str = "tcp") -> int:
    """A port the kernel says is free now (``-p CONTAINER`` and ``-P``)."""
    import socket

    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host_ip or "0.0.0.0", 0))
        return int(sock.getsockname()[1])
