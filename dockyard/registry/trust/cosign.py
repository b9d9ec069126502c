"""cosign's keys and signatures.

Keys: ``cosign.key`` is the "ENCRYPTED SIGSTORE PRIVATE KEY" PEM that cosign writes
(and containers/image reads): base64 of secure-systems-lab's encrypted JSON, the PKCS#8
DER key sealed in a NaCl secretbox (XSalsa20-Poly1305) under a scrypt-derived key
(N=32768, r=8, p=1, 32-byte salt, 24-byte nonce).  ``cosign.pub`` is a PKIX "PUBLIC
KEY" PEM of an ECDSA P-256 key.

Signatures: the simple-signing payload (``payload.cosign_payload``) is signed with
ECDSA P-256/SHA-256 (ASN.1 DER, base64 in the ``dev.cosignproject.cosign/signature``
annotation of a ``application/vnd.dev.cosign.simplesigning.v1+json`` layer whose blob is
the payload).  The layers go in an OCI manifest tagged ``sha256-<hex>.sig`` in the
image's repository (a later signature is added to the same manifest), and in an OCI 1.1
referrer (``artifactType`` cosign's, ``subject`` the image): listed by the registry's
referrers API, or in the ``sha256-<hex>`` index of the referrers tag schema where the
registry has no such API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument, NotFound, PermissionDenied
from dockyard.oci import mediatypes as mt
from dockyard.oci.reference import Reference
from dockyard.registry.client import RegistryClient
from dockyard.registry.referrers import (
    add_to_fallback_index,
    referrers_index,
    supports_referrers_api,
)
from dockyard.registry.trust.payload import MAX_PAYLOAD, InvalidSignature

PRIVATE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
_OLD_PRIVATE_PEMS = ("ENCRYPTED COSIGN PRIVATE KEY",)
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
_SCRYPT = {"N": 32768, "r": 8, "p": 1}  # go-securesystemslib's "Legacy", cosign's default
_ACCEPTED_SCRYPT = ({"N": 32768, "r": 8, "p": 1}, {"N": 65536, "r": 8, "p": 1},
                    {"N": 131072, "r": 8, "p": 1})


# --- keys ----------------------------------------------------------------------------
def _pem(kind: str, data: bytes) -> bytes:
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"
            ).encode()


def _unpem(data: bytes, kinds: tuple[str, ...], what: str) -> bytes:
    text = data.decode("ascii", errors="replace")
    for kind in kinds:
        begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
        if begin in text and end in text:
            body = text.split(begin, 1)[1].split(end, 1)[0]
            try:
                return base64.b64decode("".join(body.split()), validate=True)
            except ValueError:
                raise InvalidArgument(f"{what}: the PEM body is not base64") from None
    raise InvalidArgument(f"{what}: not a {kinds[0]} PEM")


def _scrypt_key(passphrase: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=params["N"], r=params["r"], p=params["p"]
                  ).derive(passphrase)


def encrypt(plaintext: bytes, passphrase: bytes) -> bytes:
    """go-securesystemslib's ``encrypted.Encrypt``: the JSON document."""
    import nacl.secret

    salt, nonce = os.urandom(32), os.urandom(24)
    box = nacl.secret.SecretBox(_scrypt_key(passphrase, salt, _SCRYPT))
    sealed = box.encrypt(plaintext, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": _SCRYPT,
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    return json.dumps(doc, separators=(",", ":")).encode()


def decrypt(document: bytes, passphrase: bytes) -> bytes:
    """``encrypted.Decrypt``: refuses other KDFs, ciphers or scrypt parameters."""
    import nacl.exceptions
    import nacl.secret

    try:
        doc = json.loads(document)
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise InvalidArgument(f"encrypted key: unsupported kdf {kdf['name']!r} or "
                                  f"cipher {cipher['name']!r}")
        if kdf["params"] not in _ACCEPTED_SCRYPT:
            raise InvalidArgument("encrypted key: unsupported scrypt parameters")
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        sealed = base64.b64decode(doc["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"encrypted key: malformed ({exc})") from None
    if len(nonce) != 24:
        raise InvalidArgument("encrypted key: the nonce is not 24 bytes")
    box = nacl.secret.SecretBox(_scrypt_key(passphrase, salt, kdf["params"]))
    try:
        return box.decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise PermissionDenied("encrypted key: decryption failed (wrong password?)") \
            from None


class KeyPair(NamedTuple):
    private_pem: bytes
    public_pem: bytes


def generate(passphrase: bytes) -> KeyPair:
    """A new ECDSA P-256 key: cosign.key (encrypted) and cosign.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(_pem(PRIVATE_PEM, encrypt(der, passphrase)), public)


def load_private(pem: bytes, passphrase: bytes) -> Any:
    """The private key of an encrypted sigstore/cosign PEM (an ECDSA key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    der = decrypt(_unpem(pem, (PRIVATE_PEM, *_OLD_PRIVATE_PEMS), "private key"), passphrase)
    try:
        key = serialization.load_der_private_key(der, None)
    except ValueError as exc:
        raise InvalidArgument(f"private key: not a PKCS#8 key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument("private key: only ECDSA keys can sign here")
    return key


def load_public(pem: bytes, what: str = "public key") -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: not a PEM public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey |
                      ed25519.Ed25519PublicKey):
        raise InvalidArgument(f"{what}: unsupported key type")
    return key


def sign_payload(key: Any, data: bytes) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def verify_payload(key: Any, data: bytes, signature_b64: str) -> None:
    """``InvalidSignature`` unless ``signature_b64`` is ``key``'s over ``data`` (ECDSA with
    SHA-256, or SHA-384 for P-384, RSA PKCS#1 v1.5/SHA-256, Ed25519: cosign's choices)."""
    import cryptography.exceptions
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        raise InvalidSignature("cosign signature: the annotation is not base64") from None
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
            key.verify(signature, data, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except cryptography.exceptions.InvalidSignature:
        raise InvalidSignature("cosign signature: does not verify with the key") from None


# --- the registry side ----------------------------------------------------------------
class CosignSignature(NamedTuple):
    payload: bytes
    signature: str  # base64
    where: str  # the tag or referrer it was found in


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "size": len(data),
            "digest": f"sha256:{hashlib.sha256(data).hexdigest()}", **extra}


def _upload(client: RegistryClient, repository: str, data: bytes) -> None:
    import io

    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    client.upload_blob(repository, digest, len(data), lambda: io.BytesIO(data))


def _get_json(client: RegistryClient, repository: str, ref: str) -> dict[str, Any] | None:
    from dockyard.errors import ImageNotFound
    from dockyard.oci.digest import Digest, verify

    try:
        got = client.get_manifest(repository, ref)
    except (ImageNotFound, NotFound):
        return None
    if ref.startswith("sha256:"):
        verify(got.data, Digest.parse(ref), "manifest")
    try:
        doc: dict[str, Any] = json.loads(got.data)
    except ValueError:
        raise InvalidSignature(f"{repository}:{ref} is not JSON") from None
    return doc if isinstance(doc, dict) else None


def _layer(payload: bytes, signature: str) -> dict[str, Any]:
    return _descriptor(SIMPLESIGNING, payload,
                       annotations={SIGNATURE_ANNOTATION: signature})


def _signature_manifest(layers: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """(config, manifest) of the ``.sig`` image, shaped as go-containerregistry's."""
    zero = "0001-01-01T00:00:00Z"
    config = json.dumps({"architecture": "", "created": zero,
                         "history": [{"created": zero} for _ in layers], "os": "",
                         "rootfs": {"type": "layers",
                                    "diff_ids": [d["digest"] for d in layers]},
                         "config": {}}, separators=(",", ":")).encode()
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": _descriptor(mt.OCI_CONFIG, config), "layers": layers}
    return config, json.dumps(manifest, separators=(",", ":")).encode()


def push_signature(client: RegistryClient, ref: Reference, digest: str, media_type: str,
                   size: int, payload: bytes, signature: str) -> list[str]:
    """Store one signature of ``digest`` in ``ref``'s repository: the ``.sig`` tag (added
    to the signatures there) and a referrer; returns where it went."""
    repo = ref.repository
    layer = _layer(payload, signature)
    _upload(client, repo, payload)
    tag = signature_tag(digest)
    existing = _get_json(client, repo, tag)
    layers = [d for d in (existing or {}).get("layers") or [] if isinstance(d, dict)]
    if layer not in layers:
        layers.append(layer)
    config, manifest = _signature_manifest(layers)
    _upload(client, repo, config)
    client.put_manifest(repo, tag, manifest, mt.OCI_MANIFEST)
    places = [f"{ref.name}:{tag}"]
    empty = b"{}"
    _upload(client, repo, empty)
    referrer = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": ARTIFACT_SIG,
                "config": _descriptor(EMPTY, empty), "layers": [layer],
                "subject": {"mediaType": media_type, "size": size, "digest": digest}}
    data = json.dumps(referrer, separators=(",", ":")).encode()
    referrer_digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    client.put_manifest(repo, referrer_digest, data, mt.OCI_MANIFEST)
    places.append(f"{ref.name}@{referrer_digest}")
    if not supports_referrers_api(client, repo, digest):
        add_to_fallback_index(client, repo, digest, [_descriptor(
            mt.OCI_MANIFEST, data, artifactType=ARTIFACT_SIG)])
        places.append(f"{ref.name}:{digest.replace(':', '-')} (referrers tag schema)")
    return places


def _fetch_payload(client: RegistryClient, repo: str, layer: dict[str, Any]) -> bytes:
    digest, size = layer.get("digest"), layer.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or size > MAX_PAYLOAD:
        raise InvalidSignature("cosign signature layer: bad digest or size")
    chunks: list[bytes] = []
    client.fetch_blob(repo, digest, 0, chunks.append)
    data = b"".join(chunks)
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise InvalidSignature(f"cosign payload {digest}: content does not match its digest")
    return data


MAX_SIGNATURES = 128  # layers of a .sig manifest, or cosign referrers, read per image


def _signatures_in(client: RegistryClient, repo: str, doc: dict[str, Any] | None,
                   where: str) -> list[CosignSignature]:
    found: list[CosignSignature] = []
    layers = (doc or {}).get("layers") or []
    if not isinstance(layers, list) or len(layers) > MAX_SIGNATURES:
        raise InvalidSignature(f"{where}: not a list of at most {MAX_SIGNATURES} signatures")
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLESIGNING:
            continue
        signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if isinstance(signature, str):
            found.append(CosignSignature(_fetch_payload(client, repo, layer), signature,
                                         where))
    return found


def fetch_signatures(client: RegistryClient, ref: Reference, digest: str
                     ) -> list[CosignSignature]:
    """Every cosign signature stored for ``digest``: the ``.sig`` tag's and the cosign
    referrers' (from the referrers API, or the referrers tag schema's index)."""
    repo = ref.repository
    tag = signature_tag(digest)
    found = _signatures_in(client, repo, _get_json(client, repo, tag), f"{ref.name}:{tag}")
    index = referrers_index(client, repo, digest) or \
        _get_json(client, repo, digest.replace(":", "-")) or {}
    referrers = [entry for entry in index.get("manifests") or []
                 if isinstance(entry, dict) and entry.get("artifactType") == ARTIFACT_SIG
                 and isinstance(entry.get("digest"), str)]
    for entry in referrers[:MAX_SIGNATURES]:
        doc = _get_json(client, repo, entry["digest"])
        subject = (doc or {}).get("subject") or {}
        if isinstance(subject, dict) and subject.get("digest") == digest:
            found.extend(_signatures_in(client, repo, doc, f"{ref.name}@{entry['digest']}"))
    return found
