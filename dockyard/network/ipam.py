"""Addresses for containers on a bridge network, leased in SQLite and released on exit."""

from __future__ import annotations

import ipaddress

from dockyard.errors import Unavailable
from dockyard.store.db import Database

MIGRATIONS = [
    """
    CREATE TABLE leases (
        network TEXT NOT NULL,
        address TEXT NOT NULL,
        container_id TEXT NOT NULL,
        PRIMARY KEY (network, address)
    )
    """,
]


class Ipam:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("ipam", MIGRATIONS)

    def lease(self, network: str, subnet: str, container_id: str) -> str:
        net = ipaddress.ip_network(subnet)
        hosts = list(net.hosts())
        gateway = str(hosts[0])
        with self.db.transaction("leasing an address") as conn:
            row = conn.execute("SELECT address FROM leases WHERE network=? AND container_id=?",
                               (network, container_id)).fetchone()
            if row:
                return str(row[0])
            taken = {r[0] for r in conn.execute("SELECT address FROM leases WHERE network=?",
                                                (network,))}
            for host in hosts[1:]:
                if str(host) not in taken and str(host) != gateway:
                    conn.execute("INSERT INTO leases VALUES (?, ?, ?)",
                                 (network, str(host), container_id))
                    return str(host)
        raise Unavailable(f"no free address in {subnet} on network {network}")

    def release(self, container_id: str) -> None:
        with self.db.transaction("releasing an address") as conn:
            conn.execute("DELETE FROM leases WHERE container_id=?", (container_id,))
