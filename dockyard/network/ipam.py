"""Endpoints: a container's address on a network (leased in SQLite, released when the
container leaves the network) with the names the embedded DNS answers for it."""

from __future__ import annotations

import contextlib
import json
from typing import NamedTuple

from dockyard.errors import Conflict, InvalidArgument, Unavailable
from dockyard.store.db import Database, Transaction

MIGRATIONS = [
    """
    CREATE TABLE leases (
        network TEXT NOT NULL,
        address TEXT NOT NULL,
        container_id TEXT NOT NULL,
        PRIMARY KEY (network, address)
    )
    """,
    """
    ALTER TABLE leases ADD COLUMN names TEXT NOT NULL DEFAULT '[]'
    """,
]


class Endpoint(NamedTuple):
    network: str
    address: str
    container_id: str
    names: tuple[str, ...]  # container name, short id, aliases: what DNS answers


class Ipam:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("ipam", MIGRATIONS)

    def lease(self, network: str, subnet: str, gateway: str, container_id: str, *,
              requested: str | None = None, names: tuple[str, ...] = ()) -> str:
        """The container's address on ``network`` (the same one if it has a lease)."""
        import ipaddress

        net = ipaddress.ip_network(subnet)
        with self.db.transaction("leasing an address") as conn:
            row = conn.execute("SELECT address FROM leases WHERE network=? AND container_id=?",
                               (network, container_id)).fetchone()
            if row and (requested is None or row[0] == requested):
                conn.execute("UPDATE leases SET names=? WHERE network=? AND container_id=?",
                             (json.dumps(list(names)), network, container_id))
                return str(row[0])
            if row:
                conn.execute("DELETE FROM leases WHERE network=? AND container_id=?",
                             (network, container_id))
            taken = {r[0] for r in conn.execute("SELECT address FROM leases WHERE network=?",
                                                (network,))}
            if requested is not None:
                try:
                    wanted = ipaddress.ip_address(requested)
                except ValueError as exc:
                    raise InvalidArgument(f"invalid IP address {requested!r}") from exc
                if wanted not in net or requested == gateway or wanted in (
                        net.network_address, net.broadcast_address):
                    raise InvalidArgument(f"no configured subnet or ip-range contain the IP "
                                          f"address {requested}")
                if requested in taken:
                    raise Conflict(f"Address already in use: {requested}")
                candidates = [requested]
            else:
                candidates = [str(h) for h in net.hosts() if str(h) != gateway]
            for address in candidates:
                if address not in taken:
                    conn.execute("INSERT INTO leases VALUES (?, ?, ?, ?)",
                                 (network, address, container_id, json.dumps(list(names))))
                    return address
        raise Unavailable(f"no free address in {subnet} on network {network}")

    def release(self, container_id: str, network: str | None = None, *,
                tx: Transaction | None = None) -> None:
        """``tx``: as part of the caller's transaction (a removal commits once)."""
        with contextlib.nullcontext(tx) if tx is not None else \
                self.db.transaction("releasing an address") as conn:
            if network is None:
                conn.execute("DELETE FROM leases WHERE container_id=?", (container_id,))
            else:
                conn.execute("DELETE FROM leases WHERE container_id=? AND network=?",
                             (container_id, network))

    def endpoints(self, network: str | None = None,
                  container_id: str | None = None) -> list[Endpoint]:
        sql = "SELECT network, address, container_id, names FROM leases WHERE 1=1"
        params: list[str] = []
        if network is not None:
            sql += " AND network=?"
            params.append(network)
        if container_id is not None:
            sql += " AND container_id=?"
            params.append(container_id)
        return [Endpoint(n, a, c, tuple(json.loads(names)))
                for n, a, c, names in self.db.query(sql + " ORDER BY address", params)]
