"""Image manifests, indexes and configs: parsed from their exact bytes, validated.

The bytes are what digests are computed over, so callers keep them; these types
only read them.  An unknown media type or a missing field is an
``InvalidArgument`` naming the document and the field.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest


class Descriptor(NamedTuple):
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = {}  # noqa: RUF012 - never mutated
    platform: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


class Manifest(NamedTuple):
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = {}  # noqa: RUF012


class Index(NamedTuple):
    media_type: str
    manifests: tuple[Descriptor, ...]


def descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be an object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str):
        raise InvalidArgument(f"{where}.mediaType: missing")
    if not isinstance(digest, str):
        raise InvalidArgument(f"{where}.digest: missing")
    Digest.parse(digest)
    if not isinstance(size, int) or size < 0:
        raise InvalidArgument(f"{where}.size: must be a non-negative integer")
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise InvalidArgument(f"{where}.annotations: must map strings to strings")
    platform = raw.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise InvalidArgument(f"{where}.platform: must be an object")
    return Descriptor(media_type, digest, size, annotations, platform)


MAX_JSON_BYTES = 16 << 20  # a manifest, index or config past this is refused


def load_json_value(data: bytes, what: str) -> Any:
    """Any JSON document from an image or archive: size-capped, and a nesting bomb
    (which makes Python's parser recurse until RecursionError) is a clear error."""
    if len(data) > MAX_JSON_BYTES:
        raise InvalidArgument(f"{what}: larger than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise InvalidArgument(f"{what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what}: not valid JSON: {exc}") from exc


def load_json(data: bytes, what: str) -> dict[str, Any]:
    doc = load_json_value(data, what)
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: must be a JSON object")
    return doc


def parse_manifest_or_index(data: bytes, media_type: str = "") -> Manifest | Index:
    doc = load_json(data, "manifest")
    kind = doc.get("mediaType") or media_type
    if not kind:
        kind = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if kind in mt.INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("index.manifests: must be a list")
        return Index(kind, tuple(descriptor(e, f"index.manifests[{i}]")
                                 for i, e in enumerate(entries)))
    if kind in mt.MANIFESTS:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument("manifest.layers: must be a list")
        config = descriptor(doc.get("config"), "manifest.config")
        parsed = tuple(descriptor(e, f"manifest.layers[{i}]") for i, e in enumerate(layers))
        for i, layer in enumerate(parsed):
            if layer.media_type not in mt.LAYERS:
                raise InvalidArgument(f"manifest.layers[{i}]: unknown layer media type "
                                      f"{layer.media_type!r}")
        return Manifest(kind, config, parsed, doc.get("annotations") or {})
    raise InvalidArgument(f"unknown manifest media type {kind!r}")


def parse_config(data: bytes) -> dict[str, Any]:
    """An image config; checks the fields dockyard relies on (rootfs.diff_ids)."""
    doc = load_json(data, "image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArgument("image config: rootfs.diff_ids missing")
    for diff_id in rootfs["diff_ids"]:
        Digest.parse(str(diff_id))
    return doc


def manifest_bytes(config: Descriptor, layers: list[Descriptor],
                   media_type: str = mt.OCI_MANIFEST) -> bytes:
    """Serialise a manifest deterministically (the same input gives the same digest)."""
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config.to_json(),
           "layers": [layer.to_json() for layer in layers]}
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
