"""``registries.d`` and the lookaside storage where GPG signatures live.

containers-registries.d(5): every ``*.yaml`` in the directory may hold ``default-docker``
and ``docker: {SCOPE: …}`` entries with ``lookaside``/``lookaside-staging`` (or the
older ``sigstore``/``sigstore-staging``) URLs and ``use-sigstore-attachments``.  The
most specific scope wins (``host/ns/repo:tag``, ``host/ns/repo``, ``host/ns``,
``host``), then ``default-docker``.  Signature ``N`` of manifest ``sha256:H`` in
repository ``ns/repo`` is ``BASE/ns/repo@sha256=H/signature-N`` (N from 1); reads stop
at the first missing one.  Writes (``file://`` only) go to the staging URL if one is set.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

from dockyard.errors import InvalidArgument, NotImplementedFeature, Unavailable
from dockyard.oci.reference import Reference
from dockyard.registry.trust.payload import MAX_PAYLOAD

DEFAULT_DIR = Path("/etc/containers/registries.d")
MAX_SIGNATURES = 128
_KEYS = {"lookaside", "lookaside-staging", "sigstore", "sigstore-staging",
         "use-sigstore-attachments"}


class Namespace(NamedTuple):
    lookaside: str
    staging: str
    attachments: bool | None

    def url(self, write: bool) -> str:
        return (self.staging or self.lookaside) if write else self.lookaside


def _namespace(raw: Any, where: str) -> Namespace:
    if not isinstance(raw, dict) or set(raw) - _KEYS:
        extra = sorted(set(raw) - _KEYS) if isinstance(raw, dict) else raw
        raise InvalidArgument(f"registries.d {where}: unknown keys {extra}")
    for key in _KEYS - {"use-sigstore-attachments"}:
        if key in raw and not isinstance(raw[key], str):
            raise InvalidArgument(f"registries.d {where}: {key} must be a string")
    attachments = raw.get("use-sigstore-attachments")
    if attachments is not None and not isinstance(attachments, bool):
        raise InvalidArgument(f"registries.d {where}: use-sigstore-attachments must be a "
                              "boolean")
    return Namespace(raw.get("lookaside") or raw.get("sigstore") or "",
                     raw.get("lookaside-staging") or raw.get("sigstore-staging") or "",
                     attachments)


class RegistriesD:
    """The merged configuration of one ``registries.d`` directory."""

    def __init__(self, default: Namespace | None, scopes: dict[str, Namespace]) -> None:
        self.default = default
        self.scopes = scopes

    @classmethod
    def load(cls, directory: Path | None) -> RegistriesD:
        directory = directory or DEFAULT_DIR
        default: Namespace | None = None
        scopes: dict[str, Namespace] = {}
        if not directory.is_dir():
            return cls(None, {})
        import yaml  # (only now: ~9 ms of every pull on a host with a policy.json alone)

        for path in sorted(directory.glob("*.yaml")):
            try:
                doc = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise InvalidArgument(f"registries.d {path}: {exc}") from None
            if not isinstance(doc, dict) or set(doc) - {"default-docker", "docker"}:
                raise InvalidArgument(f"registries.d {path}: only default-docker and docker "
                                      "may be set")
            if "default-docker" in doc:
                if default is not None:
                    raise InvalidArgument(f"registries.d {path}: default-docker is set twice")
                default = _namespace(doc["default-docker"], f"{path} default-docker")
            for scope, raw in (doc.get("docker") or {}).items():
                if scope in scopes:
                    raise InvalidArgument(f"registries.d {path}: docker {scope!r} is set "
                                          "twice")
                scopes[str(scope)] = _namespace(raw, f"{path} docker {scope!r}")
        return cls(default, scopes)

    def _candidates(self, ref: Reference) -> Iterator[Namespace]:
        for scope in scope_names(ref):
            if scope in self.scopes:
                yield self.scopes[scope]
        if self.default is not None:
            yield self.default

    def base_url(self, ref: Reference, write: bool) -> str:
        return next((ns.url(write) for ns in self._candidates(ref) if ns.url(write)), "")

    def use_attachments(self, ref: Reference) -> bool:
        return next((ns.attachments for ns in self._candidates(ref)
                     if ns.attachments is not None), False)


def scope_names(ref: Reference) -> list[str]:
    """containers/image's identity then namespaces of a docker reference: most specific
    first, wildcard domains last."""
    identity = f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}"
    names = [identity]
    name = ref.name
    while True:
        names.append(name)
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    host = name.split(":", 1)[0]
    while "." in host:
        host = host.split(".", 1)[1]
        names.append(f"*.{host}")
    return names


def signature_url(base: str, ref: Reference, digest: str, index: int) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64:
        raise InvalidArgument(f"bad manifest digest {digest!r}")
    return f"{base.rstrip('/')}/{ref.repository}@{algorithm}={hexpart}/signature-{index}"


def _file_path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise InvalidArgument(f"lookaside {url}: a file URL names no host")
    return Path(unquote(parsed.path))


def read_signatures(config: RegistriesD, ref: Reference, digest: str) -> list[bytes]:
    """Every signature of ``digest`` in the lookaside storage for ``ref`` ([] when none
    is configured or none is there)."""
    base = config.base_url(ref, write=False)
    if not base:
        return []
    scheme = urlparse(base).scheme
    if scheme == "file":
        return _read_files(base, ref, digest)
    if scheme in ("http", "https"):
        return _read_http(base, ref, digest)
    raise NotImplementedFeature(f"lookaside {base}: only file://, http:// and https:// "
                                "are supported")


def _read_files(base: str, ref: Reference, digest: str) -> list[bytes]:
    found: list[bytes] = []
    for index in range(1, MAX_SIGNATURES + 1):
        path = _file_path(signature_url(base, ref, digest, index))
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_PAYLOAD + 1)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise Unavailable(f"lookaside {path}: {exc.strerror}") from None
        if len(data) > MAX_PAYLOAD:
            raise InvalidArgument(f"lookaside {path}: a signature larger than 4 MiB")
        found.append(data)
    return found


def _read_http(base: str, ref: Reference, digest: str) -> list[bytes]:
    import httpx

    found: list[bytes] = []
    with httpx.Client(timeout=30, follow_redirects=True) as client:
        for index in range(1, MAX_SIGNATURES + 1):
            url = signature_url(base, ref, digest, index)
            try:
                with client.stream("GET", url) as response:
                    if response.status_code == 404:
                        break
                    if response.status_code != 200:
                        raise Unavailable(f"lookaside {url}: {response.status_code}")
                    data = b""
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > MAX_PAYLOAD:
                            raise InvalidArgument(f"lookaside {url}: a signature larger "
                                                  "than 4 MiB")
            except httpx.HTTPError as exc:
                raise Unavailable(f"lookaside {url}: {exc}") from exc
            found.append(data)
    return found


def write_signature(config: RegistriesD, ref: Reference, digest: str, signature: bytes
                    ) -> Path:
    """Add ``signature`` after the signatures of ``digest`` already stored for ``ref``
    (nothing written when the same bytes are there); returns its path."""
    base = config.base_url(ref, write=True)
    if not base:
        raise InvalidArgument(f"no lookaside storage for {ref.name} in registries.d: "
                              "set lookaside-staging or lookaside (file://…)")
    if urlparse(base).scheme != "file":
        raise NotImplementedFeature(f"lookaside {base}: signatures can be written only "
                                    "to file:// URLs")
    for index in range(1, MAX_SIGNATURES + 1):
        path = _file_path(signature_url(base, ref, digest, index))
        try:
            if path.read_bytes() == signature:
                return path
            continue
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise Unavailable(f"lookaside {path}: {exc.strerror}") from None
        _write_new(path, signature)
        return path
    raise InvalidArgument(f"{ref.name}@{digest}: already {MAX_SIGNATURES} signatures")


def _write_new(path: Path, data: bytes) -> None:
    """Atomically, and never over a file another writer put there meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".signature-")
    try:
        os.fchmod(fd, 0o644)  # signatures are public, as the registry's blobs are
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)  # fails if the name was taken meanwhile
    except FileExistsError:
        raise Unavailable(f"lookaside {path}: written by someone else meanwhile; "
                          "try again") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
