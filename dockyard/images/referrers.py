"""Artifacts that refer to an image (OCI image-spec 1.1 ``subject``): an SBOM attached
by ``build --sbom``, kept in the content store and listed here by subject.

An artifact is an image manifest whose ``config`` is the empty descriptor
(``application/vnd.oci.empty.v1+json``, the two bytes ``{}``), whose ``artifactType``
says what it is (``application/spdx+json``) and whose one layer is the document; its
``subject`` names the image manifest.  Referrers live as long as their subject: image
garbage collection keeps them, and ``push`` carries them (``registry/referrers.py``).
"""

from __future__ import annotations

import json
from typing import NamedTuple

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.images.content import LocalContentStore
from dockyard.oci import mediatypes as mt
from dockyard.oci.image import Descriptor, descriptor, load_json
from dockyard.store.db import Database

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

MIGRATIONS = [
    """
    CREATE TABLE referrers (
        subject TEXT NOT NULL,
        digest TEXT NOT NULL,
        artifact_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (subject, digest)
    )
    """,
]


class Referrer(NamedTuple):
    digest: str  # the artifact manifest's
    artifact_type: str
    size: int

    def descriptor(self) -> Descriptor:
        return Descriptor(mt.OCI_MANIFEST, self.digest, self.size)


class ReferrerIndex:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("referrers", MIGRATIONS)

    def add(self, subject: str, referrer: Referrer) -> None:
        with self.db.transaction("recording a referrer") as conn:
            conn.execute("INSERT OR REPLACE INTO referrers VALUES (?, ?, ?, ?)",
                         (subject, referrer.digest, referrer.artifact_type, referrer.size))

    def of(self, subject: str) -> list[Referrer]:
        return [Referrer(*row) for row in self.db.query(
            "SELECT digest, artifact_type, size FROM referrers WHERE subject=? ORDER BY digest",
            (subject,))]

    def live_blobs(self, content: LocalContentStore, subjects: set[str]) -> set[str]:
        """The blobs of every referrer of ``subjects`` (their manifests and layers); rows
        of subjects that are gone are dropped."""
        live: set[str] = set()
        stale = []
        for subject, digest in self.db.query("SELECT subject, digest FROM referrers"):
            if subject not in subjects:
                stale.append((subject, digest))
                continue
            live.update({digest, EMPTY_DIGEST})
            try:
                live.update(d.digest for d in artifact_blobs(content.read(digest)))
            except (DockyardError, OSError):  # a damaged referrer keeps only its manifest
                continue
        if stale:
            with self.db.transaction("dropping referrers of removed images") as conn:
                conn.executemany("DELETE FROM referrers WHERE subject=? AND digest=?", stale)
        return live


def artifact_manifest(subject: Descriptor, artifact_type: str, blob: Descriptor,
                      annotations: dict[str, str] | None = None) -> bytes:
    """An OCI 1.1 artifact manifest (image manifest with ``artifactType``/``subject``)."""
    doc = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST,
                   "size": len(EMPTY_JSON)},
        "layers": [blob.to_json()],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.size},
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, separators=(",", ":")).encode()


def attach(content: LocalContentStore, index: ReferrerIndex, subject: Descriptor,
           artifact_type: str, document: bytes,
           annotations: dict[str, str] | None = None) -> Referrer:
    """Store ``document`` as an artifact referring to ``subject``."""
    content.write(EMPTY_JSON, EMPTY_DIGEST)
    blob = Descriptor(artifact_type, content.write(document), len(document))
    data = artifact_manifest(subject, artifact_type, blob, annotations)
    referrer = Referrer(content.write(data), artifact_type, len(data))
    index.add(subject.digest, referrer)
    return referrer


def artifact_blobs(data: bytes) -> list[Descriptor]:
    """The config and layers an artifact manifest names (any layer media type: the
    image parser's layer check is for images, not artifacts)."""
    doc = load_json(data, "artifact manifest")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("artifact manifest.layers: must be a list")
    return [descriptor(doc.get("config"), "artifact manifest.config"),
            *(descriptor(e, f"artifact manifest.layers[{i}]") for i, e in enumerate(layers))]


def resubjected(content: LocalContentStore, referrer: Referrer,
                subject: Descriptor) -> bytes:
    """The referrer's manifest pointing at ``subject`` instead (an image is pushed with
    compressed layers, so its manifest digest in the registry differs from here)."""
    doc = load_json(content.read(referrer.digest), "referrer manifest")
    doc["subject"] = {"mediaType": subject.media_type, "digest": subject.digest,
                      "size": subject.size}
    return json.dumps(doc, separators=(",", ":")).encode()
