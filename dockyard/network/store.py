"""Network records (SQLite) and subnet choice.

A network is a Linux bridge with a subnet, a gateway address on the bridge, and
flags (internal).  ``bridge`` — the default network — is a record too, made on
first use; ``host`` and ``none`` are not networks of ours and have no record.
Subnets come from a pool (the engine config's ``network_pool``, default
10.215.0.0/16, clear of Docker's 172.17-31/16 and Podman's 10.88/16) in /24s, skipping any that
overlaps an address or route the host already has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.store.db import Database

if TYPE_CHECKING:  # imported where used: a lookup by name needs none of it
    import ipaddress

MIGRATIONS = [
    """
    CREATE TABLE networks (
        name TEXT PRIMARY KEY,
        id TEXT UNIQUE NOT NULL,
        driver TEXT NOT NULL,
        bridge TEXT NOT NULL,
        subnet TEXT NOT NULL,
        gateway TEXT NOT NULL,
        internal INTEGER NOT NULL,
        labels TEXT NOT NULL,
        created TEXT NOT NULL
    )
    """,
]
PREDEFINED = ("bridge", "host", "none")
DEFAULT_POOL = "10.215.0.0/16"


class NetworkRecord(NamedTuple):
    name: str
    id: str
    driver: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool
    labels: dict[str, str]
    created: str

    @property
    def prefix(self) -> int:
        return int(self.subnet.split("/")[1])


def _record(row: tuple[Any, ...]) -> NetworkRecord:
    values = list(row)
    values[6] = bool(values[6])
    values[7] = json.loads(values[7])
    return NetworkRecord(*values)


class NetworkStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("networks", MIGRATIONS)

    def add(self, record: NetworkRecord) -> None:
        with self.db.transaction("recording a network") as conn:
            if conn.execute("SELECT 1 FROM networks WHERE name=?", (record.name,)).fetchone():
                raise AlreadyExists(f"network with name {record.name} already exists")
            conn.execute("INSERT INTO networks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (*record[:6], int(record.internal), json.dumps(record.labels),
                          record.created))

    def all(self) -> list[NetworkRecord]:
        return [_record(row) for row in self.db.query("SELECT * FROM networks ORDER BY name")]

    def find(self, ref: str) -> NetworkRecord:
        """By name, full ID or a unique ID prefix (Docker's lookup order)."""
        rows = self.db.query("SELECT * FROM networks WHERE name=? OR id=?", (ref, ref))
        if not rows and len(ref) >= 1 and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.query("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(rows)} matches)")
        if not rows:
            raise NotFound(f"network {ref} not found")
        return _record(rows[0])

    def remove(self, name: str) -> None:
        with self.db.transaction("removing a network") as conn:
            conn.execute("DELETE FROM networks WHERE name=?", (name,))


def host_networks() -> list[ipaddress.IPv4Network]:
    """Subnets the host already uses: its routes (/proc/net/route, no netlink needed)."""
    import ipaddress

    found = []
    try:
        with open("/proc/net/route") as handle:
            next(handle, None)
            for line in handle:
                fields = line.split()
                if len(fields) < 8 or fields[1] == "00000000":
                    continue
                dest = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
                mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
                found.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    except OSError:
        pass
    return found


def pick_subnet(taken: Iterable[str], pool: str | None = None,
                host: Iterable[ipaddress.IPv4Network] | None = None) -> str:
    """The first /24 of the pool that overlaps none of ``taken`` nor the host's routes."""
    import ipaddress

    pool_net = ipaddress.ip_network(pool or DEFAULT_POOL)
    used = [ipaddress.ip_network(t) for t in taken]
    used += list(host if host is not None else host_networks())
    for candidate in pool_net.subnets(new_prefix=max(24, pool_net.prefixlen)):
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise InvalidArgument(f"could not find an available, non-overlapping IPv4 address pool "
                          f"among the defaults to assign to the network (pool {pool_net})")


def check_subnet(subnet: str, gateway: str | None,
                 taken: Iterable[str]) -> tuple[str, str]:
    """A user's --subnet/--gateway: valid, not overlapping; returns (subnet, gateway)."""
    import ipaddress

    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {subnet!r}: {exc}") from exc
    if net.version != 4 or net.prefixlen > 30:
        raise InvalidArgument(f"subnet {subnet}: an IPv4 subnet of /30 or larger is needed")
    for other in taken:
        if net.overlaps(ipaddress.ip_network(other)):
            raise InvalidArgument(f"Pool overlaps with other one on this address space "
                                  f"({subnet} and {other})")
    if gateway:
        try:
            address = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise InvalidArgument(f"invalid gateway {gateway!r}: {exc}") from exc
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"gateway {gateway} is not a host address in {net}")
    else:
        gateway = str(next(net.hosts()))
    return str(net), gateway
