"""The "simple signing" payload: what a signature says about an image.

Both GPG signatures (containers/image, type ``atomic container signature``) and cosign
signatures (type ``cosign container image signature``) sign a JSON document naming the
manifest digest and the reference the signer meant.  Reading is strict, as
containers/image's is: the ``critical`` section must hold exactly the known keys.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument

GPG_TYPE = "atomic container signature"
COSIGN_TYPE = "cosign container image signature"
MAX_PAYLOAD = 4 << 20  # containers/image's limit on a signature's size
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


class SignaturePayload(NamedTuple):
    docker_reference: str
    manifest_digest: str
    optional: dict[str, Any] | None


class InvalidSignature(InvalidArgument):
    """A signature that is not what it claims; never fatal to a policy check by itself."""


def gpg_payload(docker_reference: str, manifest_digest: str, creator: str) -> bytes:
    """containers/image's marshalling (Go's sorted map keys, no spaces)."""
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": manifest_digest},
                        "type": GPG_TYPE},
           "optional": {"creator": creator, "timestamp": int(time.time())}}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def cosign_payload(docker_reference: str, manifest_digest: str,
                   annotations: dict[str, str] | None = None) -> bytes:
    """sigstore's SimpleContainerImage, in its struct's field order."""
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": manifest_digest},
                        "type": COSIGN_TYPE},
           "optional": annotations or None}
    return json.dumps(doc, separators=(",", ":")).encode()


def _exact(obj: Any, keys: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidSignature(f"signature payload: {where} is not a JSON object")
    if set(obj) != keys:
        raise InvalidSignature(f"signature payload: {where} has keys {sorted(obj)}, "
                               f"expected {sorted(keys)}")
    return obj


def parse(data: bytes, expected_type: str) -> SignaturePayload:
    """The payload's claims, after checking its shape and type."""
    if len(data) > MAX_PAYLOAD:
        raise InvalidSignature("signature payload is larger than 4 MiB")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSignature(f"signature payload is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "critical" not in doc:
        raise InvalidSignature("signature payload has no critical section")
    if set(doc) - {"critical", "optional"}:
        raise InvalidSignature(f"signature payload has unknown keys {sorted(doc)}")
    critical = _exact(doc["critical"], {"type", "image", "identity"}, "critical")
    if critical["type"] != expected_type:
        raise InvalidSignature(f"signature payload has type {critical['type']!r}, "
                               f"not {expected_type!r}")
    image = _exact(critical["image"], {"docker-manifest-digest"}, "critical.image")
    identity = _exact(critical["identity"], {"docker-reference"}, "critical.identity")
    digest, ref = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidSignature(f"signature payload: bad manifest digest {digest!r}")
    if not isinstance(ref, str) or not ref:
        raise InvalidSignature(f"signature payload: bad docker-reference {ref!r}")
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise InvalidSignature("signature payload: optional is not a JSON object")
    return SignaturePayload(ref, digest, optional)
