"""Referrers (an SBOM attached to an image) carried to a registry, as OCI
distribution-spec 1.1 describes: each artifact manifest is pushed by digest with its
``subject``; a registry that answers the referrers API
(``GET /v2/<name>/referrers/<digest>``) indexes it itself, and for one that does not
(distribution 2.x answers 404) the client keeps the fallback index under the tag
``sha256-<hex of the subject>``: fetched, the new descriptor added, put back."""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import InvalidArgument, NotFound
from dockyard.images.content import LocalContentStore
from dockyard.images.referrers import Referrer, artifact_blobs, resubjected
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.oci.image import Descriptor, load_json
from dockyard.registry.client import RegistryClient


def fallback_tag(subject_digest: str) -> str:
    return subject_digest.replace(":", "-", 1)


def referrers_index(client: RegistryClient, repository: str, digest: str
                    ) -> dict[str, Any] | None:
    """The registry's referrers API answer for ``digest``, or None where it has no such
    API: 404 (docker-registry 2.x), 400/405/406 from others, or a 200 that is not an OCI
    index each mean "use the referrers tag schema", as other clients read them."""
    response = client.request("GET", f"/v2/{repository}/referrers/{digest}",
                              f"repository:{repository}:pull",
                              headers={"Accept": mt.OCI_INDEX}, ok=(200, 400, 404, 405, 406))
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if response.status_code != 200 or kind != mt.OCI_INDEX:
        return None
    try:
        return load_json(response.content, "referrers index")
    except InvalidArgument:
        return None


def supports_referrers_api(client: RegistryClient, repository: str, digest: str) -> bool:
    return referrers_index(client, repository, digest) is not None


def add_to_fallback_index(client: RegistryClient, repository: str, subject: str,
                          descriptors: list[dict[str, Any]]) -> None:
    """Add ``descriptors`` (each once) to the index under the tag ``sha256-<hex>``."""
    tag = fallback_tag(subject)
    try:
        current = load_json(client.get_manifest(repository, tag).data, "referrers index")
    except NotFound:
        current = {}
    entries: list[dict[str, Any]] = [e for e in current.get("manifests") or []
                                     if isinstance(e, dict)]
    known = {e.get("digest") for e in entries}
    added = [d for d in descriptors if d.get("digest") not in known]
    if not added and current:
        return
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries + added}
    client.put_manifest(repository, tag, json.dumps(index, separators=(",", ":")).encode(),
                        mt.OCI_INDEX)


def push_referrers(client: RegistryClient, content: LocalContentStore, repository: str,
                   subject: Descriptor, referrers: list[Referrer]) -> list[str]:
    """Push every referrer of the image now pushed as ``subject``; returns the digests
    of the artifact manifests as the registry holds them."""
    if not referrers:
        return []
    pushed: list[tuple[str, bytes]] = []
    for referrer in referrers:
        data = resubjected(content, referrer, subject)
        for blob in artifact_blobs(data):
            client.upload_blob(repository, blob.digest, blob.size,
                               lambda d=blob.digest: content.open(d))  # type: ignore[misc]
        digest = str(Digest.of(data))
        client.put_manifest(repository, digest, data, mt.OCI_MANIFEST)
        pushed.append((digest, data))
    if not supports_referrers_api(client, repository, subject.digest):
        add_to_fallback_index(client, repository, subject.digest,
                              [_descriptor_of(digest, data) for digest, data in pushed])
    return [digest for digest, _data in pushed]


def _descriptor_of(digest: str, data: bytes) -> dict[str, Any]:
    doc = load_json(data, "referrer manifest")
    entry: dict[str, Any] = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(data)}
    if doc.get("artifactType"):
        entry["artifactType"] = doc["artifactType"]
    if doc.get("annotations"):
        entry["annotations"] = doc["annotations"]
    return entry


def list_referrers(client: RegistryClient, repository: str, subject: str) -> list[dict[str, Any]]:
    """The referrers a registry lists for ``subject`` (API, else the fallback tag)."""
    doc = referrers_index(client, repository, subject)
    if doc is None:
        try:
            doc = load_json(client.get_manifest(repository, fallback_tag(subject)).data,
                            "referrers index")
        except NotFound:
            return []
    return [e for e in doc.get("manifests") or [] if isinstance(e, dict)]
