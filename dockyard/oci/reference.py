"""Image references with Docker's grammar and normalisation.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/app@sha256:…``
keeps its registry; a first component with a ``.`` or ``:`` or equal to
``localhost`` is a registry host.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dockyard.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST_RE = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


class Reference(NamedTuple):
    registry: str
    repository: str  # "library/busybox"
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """Full name without tag or digest: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """What ``docker images`` shows: ``busybox`` for docker.io/library/busybox."""
        if self.registry == DEFAULT_REGISTRY:
            return self.repository.removeprefix("library/")
        return self.name

    def with_tag(self, tag: str) -> Reference:
        return self._replace(tag=tag, digest=None)


NAME_TOTAL_LENGTH_MAX = 255


def parse(text: str) -> Reference:
    """Parse and normalise; raises InvalidArgument naming what is wrong."""
    if not text or text != text.strip():
        raise InvalidArgument(f"invalid reference format: {text!r}")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: bad digest in {text!r}")
    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: bad tag in {text!r}")
    first, _, rest = remainder.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _HOST_RE.match(first):
            raise InvalidArgument(f"invalid reference format: bad registry in {text!r}")
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, remainder
    if len(remainder) > NAME_TOTAL_LENGTH_MAX:
        # distribution/reference's limit, with its wording (Docker counts the name as
        # written, registry included)
        raise InvalidArgument(f"invalid reference format: repository name (with the registry) "
                              f"must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not _PATH_RE.match(path):
        raise InvalidArgument(
            f"invalid reference format: repository name must be lowercase: {text!r}"
            if path.lower() != path else f"invalid reference format: {text!r}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)
