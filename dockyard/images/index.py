"""The image index: which manifests are images here, and which names point at them.

Names are full normalised references (``docker.io/library/busybox:latest``);
repo digests (``name@sha256:…``) record where an image came from.  Blobs live in
the content store; this is only the naming layer over it.
"""

from __future__ import annotations

from typing import NamedTuple

from dockyard.errors import ImageNotFound
from dockyard.oci import reference
from dockyard.store.db import Database

MIGRATIONS = [
    """
    CREATE TABLE images (
        manifest_digest TEXT PRIMARY KEY,
        config_digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        created TEXT NOT NULL,
        added TEXT NOT NULL
    );
    CREATE INDEX images_config ON images(config_digest);
    CREATE TABLE refs (
        name TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE
    );
    CREATE TABLE repo_digests (
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
        PRIMARY KEY (name, digest)
    )
    """,
]


class ImageRecord(NamedTuple):
    manifest_digest: str
    config_digest: str
    media_type: str
    size: int
    created: str
    added: str

    @property
    def id(self) -> str:
        """Docker's image ID: the config digest."""
        return self.config_digest


class ImageIndex:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("images", MIGRATIONS)

    def add(self, manifest_digest: str, config_digest: str, media_type: str, size: int,
            created: str, names: list[str], repo_digest: tuple[str, str] | None = None) -> None:
        """Record an image and point ``names`` at it, in one transaction."""
        import datetime

        now = datetime.datetime.now(datetime.UTC).isoformat()
        with self.db.transaction("adding an image") as conn:
            conn.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?, ?)",
                         (manifest_digest, config_digest, media_type, size, created, now))
            for name in names:  # an unchanged name writes nothing (a rebuild costs no fsync)
                conn.execute("INSERT INTO refs VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                             "manifest_digest=excluded.manifest_digest "
                             "WHERE manifest_digest != excluded.manifest_digest",
                             (name, manifest_digest))
            if repo_digest:
                conn.execute("INSERT OR REPLACE INTO repo_digests VALUES (?, ?, ?)",
                             (*repo_digest, manifest_digest))

    def tag(self, name: str, manifest_digest: str) -> None:
        with self.db.transaction("tagging") as conn:
            conn.execute("INSERT OR REPLACE INTO refs VALUES (?, ?)", (name, manifest_digest))

    def untag(self, name: str) -> bool:
        with self.db.transaction("untagging") as conn:
            return conn.execute("DELETE FROM refs WHERE name=?", (name,)).rowcount > 0

    def remove(self, manifest_digest: str) -> None:
        with self.db.transaction("removing an image") as conn:
            conn.execute("DELETE FROM images WHERE manifest_digest=?", (manifest_digest,))

    def images(self) -> list[ImageRecord]:
        rows = self.db.query("SELECT * FROM images ORDER BY added DESC")
        return [ImageRecord(*row) for row in rows]

    def get(self, manifest_digest: str) -> ImageRecord | None:
        rows = self.db.query("SELECT * FROM images WHERE manifest_digest=?", (manifest_digest,))
        return ImageRecord(*rows[0]) if rows else None

    def names_of(self, manifest_digest: str) -> list[str]:
        return [r[0] for r in self.db.query(
            "SELECT name FROM refs WHERE manifest_digest=? ORDER BY name", (manifest_digest,))]

    def repo_digests_of(self, manifest_digest: str) -> list[str]:
        return [f"{r[0]}@{r[1]}" for r in self.db.query(
            "SELECT name, digest FROM repo_digests WHERE manifest_digest=? ORDER BY name",
            (manifest_digest,))]

    def resolve(self, text: str) -> ImageRecord:
        """A name, name@digest, full or short image ID → the image; Docker's error if none."""
        record = self._resolve_id(text)
        if record is None:
            record = self._resolve_name(text)
        if record is None:
            raise ImageNotFound(text)
        return record

    def ids_of(self, texts: list[str]) -> dict[str, str | None]:
        """``resolve(text).id`` of each (None: no such image), the plain names (a
        compose project's images) in one query: what ``resolve`` would find."""
        found: dict[str, str | None] = {}
        names: dict[str, list[str]] = {}  # full name → the texts that name it
        for text in dict.fromkeys(texts):
            ref = None
            if not _maybe_id(text):
                try:
                    ref = reference.parse(text)
                except Exception:  # noqa: BLE001 - not a reference: resolve says so
                    ref = None
            if ref is None or ref.digest:
                try:
                    found[text] = self.resolve(text).id
                except ImageNotFound:
                    found[text] = None
                continue
            names.setdefault(str(ref), []).append(text)
            found[text] = None
        if names:
            rows = self.db.query(
                "SELECT refs.name, images.config_digest FROM refs JOIN images USING "
                f"(manifest_digest) WHERE refs.name IN ({', '.join('?' * len(names))})",
                list(names))
            for name, config_digest in rows:
                for text in names[name]:
                    found[text] = str(config_digest)
        return found

    def _resolve_id(self, text: str) -> ImageRecord | None:
        if not _maybe_id(text):
            return None
        hexpart = text.removeprefix("sha256:")
        rows = self.db.query("SELECT * FROM images WHERE config_digest LIKE ? OR "
                             "manifest_digest = ?", (f"sha256:{hexpart}%", f"sha256:{hexpart}"))
        return ImageRecord(*rows[0]) if len({r[0] for r in rows}) == 1 else None

    def _resolve_name(self, text: str) -> ImageRecord | None:
        try:
            ref = reference.parse(text)
        except Exception:  # noqa: BLE001 - not a reference: simply not found
            return None
        if ref.digest:
            rows = self.db.query("SELECT manifest_digest FROM repo_digests WHERE name=? AND "
                                 "digest=?", (ref.name, ref.digest))
            digest = rows[0][0] if rows else (ref.digest if self.get(ref.digest) else None)
            return self.get(digest) if digest else None
        rows = self.db.query("SELECT manifest_digest FROM refs WHERE name=?", (str(ref),))
        return self.get(rows[0][0]) if rows else None

    def all_refs(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.query("SELECT name, manifest_digest FROM refs")]


def _maybe_id(text: str) -> bool:
    """Whether ``resolve`` looks ``text`` up as a (short) image ID first."""
    hexpart = text.removeprefix("sha256:")
    return 4 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart)
