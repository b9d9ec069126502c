"""Signing and verifying images in a registry: what ``image sign``, ``image verify`` and
``push --sign-by`` do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument, NotFound
from dockyard.oci import reference
from dockyard.oci.reference import Reference
from dockyard.registry.client import RegistryClient
from dockyard.registry.trust import cosign, gpg, lookaside, payload
from dockyard.registry.trust.payload import InvalidSignature

CREATOR = "dockyard 0.1.0"


class RemoteImage(NamedTuple):
    ref: Reference
    digest: str
    media_type: str
    size: int


def remote_image(client: RegistryClient, ref: Reference) -> RemoteImage:
    """The manifest ``ref`` names in the registry (its digest checked)."""
    from dockyard.oci.digest import Digest, verify

    got = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
    digest = ref.digest or str(Digest.of(got.data))
    verify(got.data, Digest.parse(digest), "manifest")
    if got.digest and got.digest != digest:
        raise InvalidArgument(f"{ref}: the registry names its manifest {got.digest}, "
                              f"but its bytes are {digest}")
    return RemoteImage(ref, digest, got.media_type, len(got.data))


def sign_gpg(ref: Reference, digest: str, fingerprint: str, registries_d: Path | None
             ) -> Path:
    """A simple signature of ``digest`` as ``ref`` by the gpg key ``fingerprint``, added
    to the lookaside storage ``registries.d`` names for writing; returns the file."""
    config = lookaside.RegistriesD.load(registries_d)
    if not config.base_url(ref, write=True):  # before gpg is asked for a passphrase
        raise InvalidArgument(f"no lookaside storage for {ref.name} in registries.d "
                              f"({registries_d or lookaside.DEFAULT_DIR}): set "
                              "lookaside-staging or lookaside (file://…)")
    signature = gpg.sign(payload.gpg_payload(str(ref), digest, CREATOR), fingerprint)
    return lookaside.write_signature(config, ref, digest, signature)


def sign_cosign(text: str, key_pem: bytes, passphrase: bytes, insecure: frozenset[str]
                ) -> tuple[RemoteImage, list[str]]:
    """A cosign signature of the image ``text`` names, stored beside it in the registry:
    the image and where the signature went."""
    ref = reference.parse(text)
    key = cosign.load_private(key_pem, passphrase)
    client = RegistryClient(ref.registry, insecure=insecure)
    try:
        image = remote_image(client, ref)
        data = payload.cosign_payload(ref.name, image.digest)
        places = cosign.push_signature(client, ref, image.digest, image.media_type,
                                       image.size, data, cosign.sign_payload(key, data))
        return image, places
    finally:
        client.close()


def verify_cosign(text: str, public_pem: bytes, insecure: frozenset[str]
                  ) -> tuple[RemoteImage, list[dict[str, Any]]]:
    """The payloads of the image's cosign signatures that ``public_pem`` verifies and
    whose claims (digest, repository) match it; ``NotFound`` when there are none."""
    ref = reference.parse(text)
    key = cosign.load_public(public_pem)
    client = RegistryClient(ref.registry, insecure=insecure)
    try:
        image = remote_image(client, ref)
        found = cosign.fetch_signatures(client, ref, image.digest)
    finally:
        client.close()
    good: list[dict[str, Any]] = []
    reasons: list[str] = []
    seen: set[bytes] = set()
    for item in found:
        try:
            cosign.verify_payload(key, item.payload, item.signature)
            claims = payload.parse(item.payload, payload.COSIGN_TYPE)
        except InvalidSignature as exc:
            reasons.append(f"{item.where}: {exc}")
            continue
        if claims.manifest_digest != image.digest:
            reasons.append(f"{item.where}: signs {claims.manifest_digest}, not {image.digest}")
        elif _repository(claims.docker_reference) != ref.name:
            reasons.append(f"{item.where}: signs {claims.docker_reference}, not {ref.name}")
        elif item.payload not in seen:
            seen.add(item.payload)
            good.append(json.loads(item.payload))
    if not good:
        detail = "; ".join(reasons) if reasons else "no signatures found"
        raise NotFound(f"no matching signatures for {ref}: {detail}")
    return image, good


def _repository(text: str) -> str:
    try:
        return reference.parse(text).name
    except InvalidArgument:
        return f"(not a reference: {text!r})"
