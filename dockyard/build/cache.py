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
from collections.abc import Callable
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
    """
    CREATE TABLE file_digests (
        path TEXT PRIMARY KEY,
        stamp TEXT NOT NULL,
        digest TEXT NOT NULL
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
            conn.execute("DELETE FROM file_digests")
            return conn.execute("DELETE FROM build_cache").rowcount


class FileDigests:
    """Content digests of context files, remembered by (device, inode, size, mtime,
    ctime), so a rebuild of an unchanged context reads no file (as BuildKit's
    content-hash cache); any write changes ctime, so a stale digest is never used."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, tuple[str, str]] | None = None
        self._new: dict[str, tuple[str, str]] = {}

    def _load(self) -> dict[str, tuple[str, str]]:
        if self._known is None:
            self._known = {path: (stamp, digest) for path, stamp, digest in
                           self.db.query("SELECT path, stamp, digest FROM file_digests")}
        return self._known

    def digest(self, path: str, stamp: str, compute: Callable[[], str]) -> str:
        known = self._load().get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        value = compute()
        self._new[path] = (stamp, value)
        return value

    def save(self) -> None:
        if not self._new:
            return
        with self.db.transaction("remembering file digests") as conn:
            conn.executemany("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?)",
                             [(p, s, d) for p, (s, d) in self._new.items()])
        self._new.clear()

    def forget_all(self) -> None:
        with self.db.transaction("forgetting file digests") as conn:
            conn.execute("DELETE FROM file_digests")
