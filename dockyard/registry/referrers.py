"""Referrers (an SBOM attached to an image) carried to a registry, as OCI
distribution-spec 1.1 describes: each artifact manifest is pushed by digest with its
``subject``; a registry that answers the referrers API
(``GET /v2/<name>/referrers/<digest>``) indexes it itself, and for one that does not
(distribution 2.x answers 404) the client keeps the fallback index under the tag
``sha256-<hex of the subject>``: fetched, the new descriptor added, put back."""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import NotFound
from dockyard.images.content import LocalContentStore
from dockyard.images.referrers import Referrer, artifact_blobs, resubjected
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.oci.image import Descriptor, load_json
from dockyard.registry.client import RegistryClient


def fallback_tag(subject_digest: str) -> str:
    return subject_digest.replace(":", "-", 1)


def supports_referrers_api(client: RegistryClient, repository: str, digest: str) -> bool:
    """An OCI index answered for the referrers API; the statuses registries without it
    give (404, and 400/405/406 from some) mean "use the fallback tag", as other
    clients read them; anything else is an error."""
    response = client.request("GET", f"/v2/{repository}/referrers/{digest}",
                              f"repository:{repository}:pull",
                              headers={"Accept": mt.OCI_INDEX}, ok=(200, 400, 404, 405, 406))
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    return response.status_code == 200 and kind == mt.OCI_INDEX


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
        _update_fallback_index(client, repository, subject.digest, pushed)
    return [digest for digest, _data in pushed]


def _update_fallback_index(client: RegistryClient, repository: str, subject: str,
                           pushed: list[tuple[str, bytes]]) -> None:
    tag = fallback_tag(subject)
    try:
        current = load_json(client.get_manifest(repository, tag).data, "referrers index")
    except NotFound:
        current = {}
    entries: list[dict[str, Any]] = [e for e in current.get("manifests") or []
                                     if isinstance(e, dict)]
    known = {e.get("digest") for e in entries}
    for digest, data in pushed:
        if digest in known:
            continue
        doc = load_json(data, "referrer manifest")
        entry: dict[str, Any] = {"mediaType": mt.OCI_MANIFEST, "digest": digest,
                                 "size": len(data)}
        if doc.get("artifactType"):
            entry["artifactType"] = doc["artifactType"]
        if doc.get("annotations"):
            entry["annotations"] = doc["annotations"]
        entries.append(entry)
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    data = json.dumps(index, separators=(",", ":")).encode()
    client.put_manifest(repository, tag, data, mt.OCI_INDEX)


def list_referrers(client: RegistryClient, repository: str, subject: str) -> list[dict[str, Any]]:
    """The referrers a registry lists for ``subject`` (API, else the fallback tag)."""
    if supports_referrers_api(client, repository, subject):
        response = client.request("GET", f"/v2/{repository}/referrers/{subject}",
                                  f"repository:{repository}:pull",
                                  headers={"Accept": mt.OCI_INDEX})
        doc = load_json(response.content, "referrers index")
    else:
        try:
            doc = load_json(client.get_manifest(repository, fallback_tag(subject)).data,
                            "referrers index")
        except NotFound:
            return []
    return [e for e in doc.get("manifests") or [] if isinstance(e, dict)]
