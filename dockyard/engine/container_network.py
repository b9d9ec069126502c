"""A container's place on its root's bridge network: which bridge, which address,
which published ports, and removing the bridge when nothing is on it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.records import ContainerRecord
from dockyard.store.layout import Layout

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService


def bridge_of(layout: Layout) -> tuple[str, str]:
    """This root's bridge network: (bridge name, subnet).  The default root's is
    dockyard0 on 10.213.0.0/24 (clear of Docker's 172.17/16 and Podman's 10.88/16);
    any other root gets its own, derived from its path, so instances and tests
    never share one."""
    import hashlib

    if layout.root == Path("/var/lib/dockyard"):
        return "dockyard0", os.environ.get("DOCKYARD_SUBNET", "10.213.0.0/24")
    digest = hashlib.sha1(str(layout.root).encode()).hexdigest()
    return f"dy{digest[:10]}", f"10.214.{int(digest[10:12], 16)}.0/24"


def attach_config(service: ContainerService, record: ContainerRecord) -> dict[str, Any]:
    """Allocate the container's place on the bridge; kept in network.json for inspect/ps."""
    config = _allocate(service, record)
    (service.bundle(record.id) / "network.json").write_text(json.dumps(config))
    return config


def _allocate(service: ContainerService, record: ContainerRecord) -> dict[str, Any]:
    from dockyard.network.bridge import ensure_bridge, hosts_in
    from dockyard.network.ipam import Ipam

    name, subnet = bridge_of(service.layout)
    gateway = hosts_in(subnet)[0]
    prefix = int(subnet.split("/")[1])
    ensure_bridge(name, gateway, prefix)
    address = Ipam(service.store.db).lease(name, subnet, record.id)
    # like dockerd's --ip: where ports without an address are published
    default_ip = os.environ.get("DOCKYARD_DEFAULT_BIND_IP", "")
    ports = []
    for p in record.spec.ports:
        host_ip = p.host_ip or default_ip
        ports.append([host_ip, p.host_port or _free_port(host_ip), p.container_port])
    if record.spec.publish_all:
        published = {p[2] for p in ports}
        for exposed in sorted(_exposed_ports(service, record)):
            if exposed not in published:
                ports.append([default_ip, _free_port(default_ip), exposed])
    return {"bridge": name, "address": address, "prefix": prefix, "gateway": gateway,
            "host_ifname": f"dy{record.id[:10]}", "ports": ports}


def _exposed_ports(service: ContainerService, record: ContainerRecord) -> set[int]:
    image = service.images.index.get(record.manifest_digest)
    exposed = (service.images.config(image).get("config") or {}).get("ExposedPorts") \
        if image else None
    return {int(key.split("/")[0]) for key in (exposed or {})
            if key.endswith("/tcp") or "/" not in key}


def prune(service: ContainerService) -> bool:
    """Remove this root's bridge when no container uses it."""
    from dockyard.network.bridge import delete_bridge

    if any((service.bundle(r.id) / "network.json").exists()
           for r in service.list(all_containers=True)):
        return False
    return delete_bridge(bridge_of(service.layout)[0])


def _free_port(host_ip: str) -> int:
    """A port the kernel says is free now (``-p CONTAINER`` and ``-P``)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host_ip or "0.0.0.0", 0))
        return int(sock.getsockname()[1])
