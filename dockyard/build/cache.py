"""The build cache: step key → the layer that step produced.

A key chains the parent's key with the instruction, its resolved arguments (the
environment and build args a RUN sees, the user, the working directory) and, for
COPY/ADD, the checksum of what is copied, so a hit means the step would produce
the same change.  Only layer-making steps are recorded; metadata steps are
replayed (they are pure).  A hit is used only while its blob is still in the
content store; ``dockyard builder prune`` forgets every entry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from dockyard.store.db import Database

MIGRATIONS = [
    """
    CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,
        layer_digest TEXT,
        diff_id TEXT,
        media_type TEXT,
        size INTEGER,
        created TEXT NOT NULL
    )
    """,
]


def step_key(parent_key: str, *material: Any) -> str:
    blob = json.dumps([parent_key, *material], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


class CachedLayer(NamedTuple):
    """A step's result; ``digest`` None when the step changed no file."""

    digest: str | None
    diff_id: str | None
    media_type: str | None
    size: int
    created: str


class BuildCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("build", MIGRATIONS)

    def get(self, key: str) -> CachedLayer | None:
        rows = self.db.query("SELECT layer_digest, diff_id, media_type, size, created "
                             "FROM build_cache WHERE key=?", (key,))
        return CachedLayer(*rows[0]) if rows else None

    def put(self, key: str, layer: CachedLayer) -> None:
        with self.db.transaction("recording a build cache entry") as conn:
            conn.execute("INSERT OR REPLACE INTO build_cache VALUES (?, ?, ?, ?, ?, ?)",
                         (key, *layer))

    def digests(self) -> set[str]:
        """Blobs the cache refers to (kept by image garbage collection)."""
        return {row[0] for row in self.db.query(
            "SELECT layer_digest FROM build_cache WHERE layer_digest IS NOT NULL")}

    def prune(self) -> int:
        with self.db.transaction("pruning the build cache") as conn:
            return conn.execute("DELETE FROM build_cache").rowcount
