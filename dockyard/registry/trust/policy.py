"""containers-policy.json(5): which images may be pulled, checked before any is stored.

The policy maps scopes of the ``docker`` transport (``""``, ``host[:port]``, namespaces,
``host/ns/repo``, ``host/ns/repo:tag`` or ``@digest``, ``*.domain``) to lists of
requirements; the most specific scope naming the image wins, then the transport's
``""``, then ``default``.  Every requirement of the list must accept the image:
``insecureAcceptAnything``, ``reject``, ``signedBy`` (``keyType: GPGKeys``; GPG simple
signing from the ``registries.d`` lookaside) and ``sigstoreSigned`` (a public key; cosign
signatures, read when ``use-sigstore-attachments`` is set for the scope, as
containers/image does).  ``signedIdentity`` says which reference a signature must name:
``matchRepoDigestOrExact`` (the default), ``matchExact``, ``matchRepository``,
``exactReference``, ``exactRepository``, ``remapIdentity``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument, PermissionDenied
from dockyard.oci import reference
from dockyard.oci.reference import Reference
from dockyard.registry.client import RegistryClient
from dockyard.registry.trust import lookaside, payload
from dockyard.registry.trust.payload import InvalidSignature

DEFAULT_PATH = Path("/etc/containers/policy.json")
_IDENTITY_TYPES = {"matchExact", "matchRepoDigestOrExact", "matchRepository",
                   "exactReference", "exactRepository", "remapIdentity"}


class PolicyDenied(PermissionDenied):
    """An image the policy refuses (nothing of it has been stored)."""


class Identity(NamedTuple):
    kind: str
    value: str = ""  # exactReference/exactRepository: the reference; remapIdentity: prefix
    signed_prefix: str = ""


class Requirement(NamedTuple):
    kind: str  # reject, insecureAcceptAnything, signedBy, sigstoreSigned
    key_paths: tuple[str, ...] = ()  # read when an image of the scope is checked
    key_data: tuple[bytes, ...] = ()
    identity: Identity = Identity("matchRepoDigestOrExact")
    # what dockyard cannot check (fulcio, X.509, signedBaseLayer): images of the scope are
    # refused with this reason; the file is still read, so other scopes keep working
    unsupported: str = ""

    def describe(self) -> str:
        source = ", ".join(self.key_paths) if self.key_paths else "keyData in the policy"
        return f"{self.kind} ({source})" if self.key_paths or self.key_data else self.kind

    def load_keys(self) -> list[bytes]:
        """The keys (as containers/image, files are read when they are needed: a scope
        naming a key file this host lacks does not stop pulls from other scopes)."""
        keys = list(self.key_data)
        for path in self.key_paths:
            try:
                keys.append(Path(path).read_bytes())
            except OSError as exc:
                raise InvalidArgument(f"{self.kind} key {path}: {exc.strerror}") from None
        return keys


# --- reading ---------------------------------------------------------------------------
def _fields(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(raw) - allowed
    if extra:
        raise InvalidArgument(f"{where}: unknown field(s) {sorted(extra)}")


def _identity(raw: Any, where: str) -> Identity:
    if raw is None:
        return Identity("matchRepoDigestOrExact")
    if not isinstance(raw, dict) or raw.get("type") not in _IDENTITY_TYPES:
        raise InvalidArgument(f"{where}: signedIdentity needs a type of "
                              f"{sorted(_IDENTITY_TYPES)}")
    kind = raw["type"]
    if kind == "exactReference":
        _fields(raw, {"type", "dockerReference"}, where)
        text = raw.get("dockerReference")
        if not isinstance(text, str) or _name_only(text):
            raise InvalidArgument(f"{where}: exactReference needs a dockerReference with a "
                                  "tag or digest")
        return Identity(kind, str(reference.parse(text)))
    if kind == "exactRepository":
        _fields(raw, {"type", "dockerRepository"}, where)
        text = raw.get("dockerRepository")
        if not isinstance(text, str) or not _name_only(text):
            raise InvalidArgument(f"{where}: exactRepository needs a dockerRepository "
                                  "without tag or digest")
        return Identity(kind, reference.parse(text).name)
    if kind == "remapIdentity":
        _fields(raw, {"type", "prefix", "signedPrefix"}, where)
        prefix, signed = raw.get("prefix"), raw.get("signedPrefix")
        if not isinstance(prefix, str) or not isinstance(signed, str) or not prefix \
                or not signed:
            raise InvalidArgument(f"{where}: remapIdentity needs prefix and signedPrefix")
        return Identity(kind, prefix, signed)
    _fields(raw, {"type"}, where)
    return Identity(kind)


def _key_material(raw: dict[str, Any], where: str, pem: bool
                  ) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    given = [k for k in ("keyPath", "keyPaths", "keyData", "keyDatas") if k in raw]
    if len(given) != 1:
        raise InvalidArgument(f"{where}: exactly one of keyPath, keyPaths, keyData"
                              f"{', keyDatas' if pem else ''} is required")
    field = given[0]
    value = raw[field]
    values = value if field in ("keyPaths", "keyDatas") else [value]
    if not isinstance(values, list) or not values or \
            not all(isinstance(v, str) and v for v in values):
        raise InvalidArgument(f"{where}: {field} must be a non-empty "
                              f"{'list of strings' if field.endswith('s') else 'string'}")
    if field.startswith("keyPath"):
        return tuple(values), ()
    try:
        return (), tuple(base64.b64decode(item, validate=True) for item in values)
    except ValueError:
        raise InvalidArgument(f"{where}: {field} is not base64") from None


def _requirement(raw: Any, where: str) -> Requirement:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidArgument(f"{where}: a requirement must be an object with a type")
    kind = raw["type"]
    if kind in ("reject", "insecureAcceptAnything"):
        _fields(raw, {"type"}, where)
        return Requirement(kind)
    if kind == "signedBy":
        _fields(raw, {"type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"},
                where)
        if raw.get("keyType") != "GPGKeys":
            return Requirement(kind, unsupported=f"signedBy keyType {raw.get('keyType')!r} "
                               "is not supported (GPGKeys is)")
        paths, data = _key_material(raw, where, pem=False)
        return Requirement(kind, paths, data, _identity(raw.get("signedIdentity"), where))
    if kind == "sigstoreSigned":
        unsupported = {"fulcio", "rekorPublicKeyPath", "rekorPublicKeyData", "pki"} & set(raw)
        if unsupported:
            return Requirement(kind, unsupported=f"sigstoreSigned {sorted(unsupported)} "
                               "are not supported (public keys are)")
        _fields(raw, {"type", "keyPath", "keyPaths", "keyData", "keyDatas", "signedIdentity"},
                where)
        paths, data = _key_material(raw, where, pem=True)
        return Requirement(kind, paths, data, _identity(raw.get("signedIdentity"), where))
    if kind == "signedBaseLayer":
        return Requirement(kind, unsupported="signedBaseLayer is not supported")
    raise InvalidArgument(f"{where}: unknown requirement type {kind!r}")


def _requirements(raw: Any, where: str) -> tuple[Requirement, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(f"{where}: a non-empty list of requirements is required")
    return tuple(_requirement(item, f"{where}[{i}]") for i, item in enumerate(raw))


class Policy(NamedTuple):
    path: Path
    default: tuple[Requirement, ...]
    docker: dict[str, tuple[Requirement, ...]]

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            doc = json.loads(path.read_bytes())
        except OSError as exc:
            raise InvalidArgument(f"policy {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidArgument(f"policy {path}: not JSON: {exc}") from None
        if not isinstance(doc, dict) or "default" not in doc:
            raise InvalidArgument(f"policy {path}: a default is required")
        _fields(doc, {"default", "transports"}, f"policy {path}")
        default = _requirements(doc["default"], f"policy {path}: default")
        transports = doc.get("transports") or {}
        if not isinstance(transports, dict):
            raise InvalidArgument(f"policy {path}: transports must be an object")
        docker: dict[str, tuple[Requirement, ...]] = {}
        for transport, scopes in transports.items():
            if not isinstance(scopes, dict):
                raise InvalidArgument(f"policy {path}: transports.{transport} must be an "
                                      "object")
            if transport != "docker":
                continue  # other transports' scopes are not ours to read
            for scope, raw in scopes.items():
                docker[scope] = _requirements(raw, f"policy {path}: transports.docker"
                                                   f"[{scope!r}]")
        return cls(path, default, docker)

    def requirements_for(self, ref: Reference) -> tuple[str, tuple[Requirement, ...]]:
        """The scope that applies to ``ref`` (its name in the file) and its list."""
        for scope in lookaside.scope_names(ref):
            if scope in self.docker:
                return f'transports.docker["{scope}"]', self.docker[scope]
        if "" in self.docker:
            return 'transports.docker[""]', self.docker[""]
        return "default", self.default


# --- identities ------------------------------------------------------------------------
def _name_only(text: str) -> bool:
    return "@" not in text and ":" not in text.rsplit("/", 1)[-1]


def _identity_text(ref: Reference) -> str:
    return f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}"


def _remapped(ref: Reference, prefix: str, signed_prefix: str) -> Reference:
    name = ref.name
    if name == prefix or name.startswith(prefix.rstrip("/") + "/"):
        new = signed_prefix + name[len(prefix):]
        try:
            return reference.parse(new)._replace(tag=ref.tag, digest=ref.digest)
        except InvalidArgument:
            return ref
    return ref


def identity_matches(rule: Identity, intended: Reference, signed: str) -> bool:
    """Whether a signature naming ``signed`` may stand for the image ``intended``."""
    try:
        sig = reference.parse(signed)
    except InvalidArgument:
        return False
    sig_name_only = _name_only(signed)
    if rule.kind == "remapIdentity":
        intended = _remapped(intended, rule.value, rule.signed_prefix)
    if rule.kind in ("matchRepoDigestOrExact", "remapIdentity"):
        if intended.digest:
            return sig.name == intended.name
        return not sig_name_only and _identity_text(sig) == _identity_text(intended)
    if rule.kind == "matchExact":
        return not sig_name_only and _identity_text(sig) == _identity_text(intended)
    if rule.kind == "matchRepository":
        return sig.name == intended.name
    if rule.kind == "exactReference":
        return not sig_name_only and str(sig) == rule.value
    if rule.kind == "exactRepository":
        return sig.name == rule.value
    return False


# --- evaluating ------------------------------------------------------------------------
class Gate:
    """The policy and ``registries.d`` one pull is checked against."""

    def __init__(self, policy: Policy, registries_d: lookaside.RegistriesD) -> None:
        self.policy = policy
        self.registries_d = registries_d

    @classmethod
    def load(cls, policy_path: Path | None, registries_d: Path | None) -> Gate | None:
        """The gate of ``--policy`` (which must exist) or of the default policy file;
        None when neither is there: everything is accepted, as before policies."""
        path = policy_path or DEFAULT_PATH
        if policy_path is None and not path.exists():
            return None
        return cls(Policy.load(path), lookaside.RegistriesD.load(registries_d))

    def admit(self, client: RegistryClient, ref: Reference, digests: list[str]) -> None:
        """``PolicyDenied`` unless every requirement of ``ref``'s scope accepts the image
        whose manifest has one of ``digests`` (the index's and the chosen image's)."""
        scope, requirements = self.policy.requirements_for(ref)
        for requirement in requirements:
            reason = self._refusal(requirement, client, ref, digests)
            if reason:
                raise PolicyDenied(
                    f"Source image rejected: {ref} by {requirement.describe()} in "
                    f"{scope} of policy {self.policy.path}: {reason}")

    def _refusal(self, requirement: Requirement, client: RegistryClient, ref: Reference,
                 digests: list[str]) -> str:
        if requirement.unsupported:
            return requirement.unsupported
        if requirement.kind == "insecureAcceptAnything":
            return ""
        if requirement.kind == "reject":
            return "Running image is rejected by policy."
        if requirement.kind == "signedBy":
            return self._gpg_refusal(requirement, ref, digests)
        return self._sigstore_refusal(requirement, client, ref, digests)

    def _gpg_refusal(self, requirement: Requirement, ref: Reference, digests: list[str]
                     ) -> str:
        from dockyard.registry.trust import gpg

        signatures = [s for d in digests
                      for s in lookaside.read_signatures(self.registries_d, ref, d)]
        if not signatures:
            where = self.registries_d.base_url(ref, write=False) or "no lookaside configured"
            return f"A signature was required, but no signature exists ({where})"
        reasons: list[str] = []
        with gpg.Verifier(requirement.load_keys()) as verifier:
            for signature in signatures:
                try:
                    data, _signer = verifier.verify(signature)
                    claims = payload.parse(data, payload.GPG_TYPE)
                except InvalidSignature as exc:
                    reasons.append(str(exc))
                    continue
                reason = _claims_refusal(requirement, ref, digests, claims)
                if not reason:
                    return ""
                reasons.append(reason)
        return "None of the signatures were accepted, reasons: " + "; ".join(reasons)

    def _sigstore_refusal(self, requirement: Requirement, client: RegistryClient,
                          ref: Reference, digests: list[str]) -> str:
        from dockyard.registry.trust import cosign

        if not self.registries_d.use_attachments(ref):
            return ("A signature was required, but no signature exists (use-sigstore-"
                    "attachments is not set for it in registries.d: cosign signatures "
                    "are not read)")
        try:
            signatures = [s for d in digests for s in cosign.fetch_signatures(client, ref, d)]
        except InvalidSignature as exc:
            return f"the signatures cannot be read: {exc}"
        if not signatures:
            return "A signature was required, but no signature exists"
        keys = [cosign.load_public(k, f"{requirement.kind} key") for k in requirement.load_keys()]
        reasons: list[str] = []
        for found in signatures:
            try:
                _verify_any(keys, found.payload, found.signature)
                claims = payload.parse(found.payload, payload.COSIGN_TYPE)
            except InvalidSignature as exc:
                reasons.append(f"{found.where}: {exc}")
                continue
            reason = _claims_refusal(requirement, ref, digests, claims)
            if not reason:
                return ""
            reasons.append(f"{found.where}: {reason}")
        return "None of the signatures were accepted, reasons: " + "; ".join(reasons)


def _verify_any(keys: list[Any], data: bytes, signature: str) -> None:
    from dockyard.registry.trust import cosign

    last: InvalidSignature | None = None
    for key in keys:
        try:
            cosign.verify_payload(key, data, signature)
            return
        except InvalidSignature as exc:
            last = exc
    raise last or InvalidSignature("no key")


def _claims_refusal(requirement: Requirement, ref: Reference, digests: list[str],
                    claims: payload.SignaturePayload) -> str:
    if claims.manifest_digest not in digests:
        return (f"Signature for a different manifest ({claims.manifest_digest}, "
                f"not {' or '.join(digests)})")
    if not identity_matches(requirement.identity, ref, claims.docker_reference):
        return (f"Signature for identity {claims.docker_reference} is not accepted "
                f"({requirement.identity.kind})")
    return ""


Admit = Callable[[RegistryClient, Reference, list[str]], None]
