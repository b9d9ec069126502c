"""NetworkService: create, list, inspect, remove and prune networks; keep each
network's bridge, firewall chain and name table in step with its record.

``bridge`` (the default network) is made on first use with this root's bridge
(``dockyard0`` on 10.213.0.0/24 for the default root, a name and subnet derived
from the path for any other); user networks get ``dy-<id12>`` bridges and /24s
from the pool.  Endpoints (which container is on which network with which
address and names) are IPAM leases, so a container keeps its networks across
restarts until it is disconnected or removed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.network import names as name_table
from dockyard.network.ipam import Endpoint, Ipam
from dockyard.network.store import (
    PREDEFINED,
    NetworkRecord,
    NetworkStore,
    check_subnet,
    pick_subnet,
)
from dockyard.store.config import EngineConfig
from dockyard.store.db import Database
from dockyard.store.layout import Layout

DEFAULT_ROOT = Path("/var/lib/dockyard")
RULES_MARKER = "firewall-rules"  # in the run dir: the RULES_VERSION the chains were made by
_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def default_bridge(layout: Layout, config: EngineConfig | None = None) -> tuple[str, str]:
    """This root's default bridge and subnet (see the module docstring); the engine
    config's ``bridge_subnet`` wins when set."""
    subnet = config.bridge_subnet if config is not None else None
    if layout.root == DEFAULT_ROOT:
        return "dockyard0", subnet or "10.213.0.0/24"
    import hashlib

    digest = hashlib.sha1(str(layout.root).encode()).hexdigest()
    return f"dy{digest[:10]}", subnet or f"10.214.{int(digest[10:12], 16)}.0/24"


class NetworkService:
    def __init__(self, layout: Layout, db: Database,
                 config: EngineConfig | None = None) -> None:
        self.layout = layout
        self.config = config or EngineConfig()
        self.store = NetworkStore(db)
        self.ipam = Ipam(db)

    # --- records -----------------------------------------------------------------
    def get(self, ref: str) -> NetworkRecord:
        if ref == "bridge":
            return self.default()
        if ref in ("host", "none"):
            raise InvalidArgument(f"network {ref} is not a bridge network")
        return self.store.find(ref)

    def default(self) -> NetworkRecord:
        try:
            return self.store.find("bridge")
        except NotFound:
            bridge, subnet = default_bridge(self.layout, self.config)
            _subnet, gateway = check_subnet(subnet, None, [])
            record = NetworkRecord("bridge", os.urandom(32).hex(), "bridge", bridge, subnet,
                                   gateway, False, {}, _now())
            if self.store.db.read_only:  # listing a read-only root: the would-be default
                return record
            try:
                self.store.add(record)
            except AlreadyExists:  # made by a concurrent command meanwhile
                return self.store.find("bridge")
            return record

    def all(self) -> list[NetworkRecord]:
        return self.store.all()

    def create(self, name: str, *, subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, labels: dict[str, str] | None = None,
               driver: str = "bridge") -> NetworkRecord:
        if driver != "bridge":
            raise InvalidArgument(f"network driver {driver!r} is not supported (bridge only)")
        if name in PREDEFINED:
            raise Conflict(f"network with name {name} already exists (pre-defined)")
        if not _VALID_NAME.match(name):
            raise InvalidArgument(f"invalid network name {name!r}: only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        taken = [r.subnet for r in self.store.all()] + [
            default_bridge(self.layout, self.config)[1]]
        if subnet:
            subnet, gateway = check_subnet(subnet, gateway, taken)
        else:
            if gateway:
                raise InvalidArgument("--gateway needs --subnet")
            subnet, gateway = check_subnet(pick_subnet(taken, self.config.network_pool), None,
                                           [])
        network_id = os.urandom(32).hex()
        record = NetworkRecord(name, network_id, "bridge", f"dy-{network_id[:12]}", subnet,
                               str(gateway), internal, dict(labels or {}), _now())
        self.store.add(record)
        try:
            self.ensure_up(record)
        except BaseException:
            self.store.remove(name)
            self._bridge_down(record)
            with contextlib.suppress(Exception):  # the first error is the one to tell
                self.apply_firewall(removed=True)  # its rules may be in already
            raise
        return record

    def ensure_up(self, record: NetworkRecord) -> None:
        """The network's bridge (and, when the bridge had to be made, its rules), and
        for a routed network the host's forwarding, checked on every use as dockerd
        checks it on every start (one read of /proc: ``network.forwarding``)."""
        from dockyard.network.bridge import bridge_ready, ensure_bridge

        if not bridge_ready(record.bridge):
            made = not os.path.exists(f"/sys/class/net/{record.bridge}/bridge")
            ensure_bridge(record.bridge, record.gateway, record.prefix, self.layout.link_alias)
            if made:
                self.apply_firewall()
        elif not self._rules_current():  # chains of an older dockyard: made anew
            self.apply_firewall()
        if self.config.ip_forward and not record.internal:
            from dockyard.network import forwarding

            forwarding.ensure_enabled()  # after the chains: their accepts come first

    def apply_firewall(self, *, removed: bool = False) -> None:
        """This root's chains made to match its networks; ``removed``: after a
        network's removal (the chains and their jumps are there: no check)."""
        from dockyard.network import firewall

        rules = [firewall.BridgeRules(r.bridge, r.subnet, r.internal) for r in self.store.all()]
        root = str(self.layout.root)
        if rules or (firewall.available() and (removed or firewall.present(root))):
            firewall.apply(root, rules, ensure_jumps=not removed)
        marker = self.layout.run_dir / RULES_MARKER
        if rules:
            with contextlib.suppress(OSError):  # (only a hint: the next start checks)
                marker.write_text(firewall.RULES_VERSION)
        else:
            marker.unlink(missing_ok=True)

    def _rules_current(self) -> bool:
        """Whether this root's chains are of this dockyard's making (one small read on
        every start: an upgrade's new rules reach bridges made by an older one)."""
        from dockyard.network.firewall import RULES_VERSION

        try:
            return (self.layout.run_dir / RULES_MARKER).read_text() == RULES_VERSION
        except OSError:
            return False

    def remove(self, ref: str) -> str:
        if ref in PREDEFINED:
            raise Conflict(f"{ref} is a pre-defined network and cannot be removed")
        record = self.store.find(ref)
        users = self.ipam.endpoints(network=record.name)
        if users:
            raise Conflict(f"error while removing network: network {record.name} id "
                           f"{record.id} has active endpoints")
        self.store.remove(record.name)
        # side by side: the kernel's removal of a bridge waits out an RCU grace period
        # (~30 ms), iptables-restore takes as long
        _together(lambda: self._bridge_down(record), lambda: self.apply_firewall(removed=True))
        return record.name

    def _bridge_down(self, record: NetworkRecord) -> None:
        from dockyard.network.bridge import delete_link

        delete_link(record.bridge)  # (False: there is none)
        name_table.remove_table(self.names_path(record.name))

    def prune(self) -> list[str]:
        """Remove every network no container is on (the default one's bridge too: it is
        made again on next use)."""
        removed = []
        for record in self.store.all():
            if self.ipam.endpoints(network=record.name):
                continue
            self.store.remove(record.name)
            self._bridge_down(record)
            removed.append(record.name)
        if removed:
            self.apply_firewall()
        return removed

    def check(self, live_containers: set[str], running: set[str], *,
              repair: bool = False) -> list[str]:
        """Orphans: leases of removed containers, names of stopped ones, name tables of
        removed networks, this root's chains with no network, the default bridge with
        no record; and user networks whose bridge is gone.  ``repair`` fixes each."""
        from dockyard.network import firewall

        problems = []
        records = {r.name: r for r in self.store.all()}
        for endpoint in self.ipam.endpoints():
            if endpoint.container_id not in live_containers:
                problems.append(f"network {endpoint.network}: lease {endpoint.address} of "
                                f"removed container {endpoint.container_id[:12]}")
                if repair:
                    self.ipam.release(endpoint.container_id)
        tables = name_table.table_path(self.layout.run_dir, "x").parent
        for path in sorted(tables.glob("*.names")) if tables.is_dir() else []:
            network = path.name.removesuffix(".names")
            if network not in records:
                problems.append(f"name table of removed network {network}")
                if repair:
                    name_table.remove_table(path)
                continue
            reader = name_table.NameReader(path)
            reader.refresh()
            for _address, container_id, _names in reader.rows:
                if container_id not in running:
                    problems.append(f"network {network}: DNS names of container "
                                    f"{container_id[:12]}, which is not running")
                    if repair:
                        name_table.withdraw(path, container_id)
        running_short = {c[:12] for c in running}
        for short in sorted(firewall.published_containers(str(self.layout.root))
                            - running_short):
            problems.append(f"port DNAT rules of container {short}, which is not running")
            if repair:
                firewall.unpublish_ports(str(self.layout.root), short)
        if not records and firewall.available() and firewall.present(str(self.layout.root)):
            problems.append("iptables chains of this root with no network left")
            if repair:
                firewall.remove(str(self.layout.root))
        bridge = default_bridge(self.layout, self.config)[0]
        if "bridge" not in records and os.path.exists(f"/sys/class/net/{bridge}"):
            problems.append(f"bridge {bridge} with no network record")
            if repair:
                from dockyard.network.bridge import delete_link

                delete_link(bridge)
        for record in records.values():
            if record.name != "bridge" and not os.path.exists(f"/sys/class/net/{record.bridge}"):
                problems.append(f"network {record.name}: bridge {record.bridge} is missing")
                if repair:
                    self.ensure_up(record)
        return problems

    # --- endpoints -----------------------------------------------------------------
    def names_path(self, network: str) -> Path:
        return name_table.table_path(self.layout.run_dir, network)

    def endpoints(self, network: str | None = None,
                  container_id: str | None = None) -> list[Endpoint]:
        return self.ipam.endpoints(network, container_id)

    def inspect(self, record: NetworkRecord,
                container_names: dict[str, str]) -> dict[str, Any]:
        """Docker's ``network inspect`` shape."""
        import hashlib

        containers = {}
        for endpoint in self.ipam.endpoints(network=record.name):
            containers[endpoint.container_id] = {
                "Name": container_names.get(endpoint.container_id, ""),
                "EndpointID": hashlib.sha256(
                    f"{record.id}{endpoint.container_id}".encode()).hexdigest(),
                "MacAddress": "", "IPv4Address": f"{endpoint.address}/{record.prefix}",
                "IPv6Address": ""}
        return {
            "Name": record.name, "Id": record.id, "Created": record.created, "Scope": "local",
            "Driver": record.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [{"Subnet": record.subnet, "Gateway": record.gateway}]},
            "Internal": record.internal, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": {"com.docker.network.bridge.name": record.bridge},
            "Labels": record.labels}


def _together(first: Callable[[], None], second: Callable[[], None]) -> None:
    """``first`` in a thread while ``second`` runs here; the first error raised."""
    import threading

    failed: list[BaseException] = []

    def run() -> None:
        try:
            first()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            failed.append(exc)

    thread = threading.Thread(target=run, name="network-down")
    thread.start()
    try:
        second()
    finally:
        thread.join()
    if failed:
        raise failed[0]


def predefined_inspect(name: str) -> dict[str, Any]:
    import hashlib

    return {"Name": name, "Id": hashlib.sha256(name.encode()).hexdigest(), "Scope": "local",
            "Driver": "host" if name == "host" else "null", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Containers": {}, "Options": {}, "Labels": {}}


def _now() -> str:
    from dockyard.images.imagefile import now_iso

    return now_iso()
