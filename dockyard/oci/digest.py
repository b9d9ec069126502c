"""Content digests (``sha256:<64 hex>``): parsing, computing, verifying."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from dockyard.errors import DigestMismatch, InvalidArgument

_DIGEST_RE = re.compile(r"^(sha256):([a-f0-9]{64})$|^(sha512):([a-f0-9]{128})$")


class Digest(NamedTuple):
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """Docker's 12-character short id."""
        return self.hex[:12]

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if not match:
            raise InvalidArgument(f"invalid digest {text!r}: want sha256:<64 hex characters>")
        algorithm, hexpart = (match.group(1), match.group(2)) if match.group(1) else (
            match.group(3), match.group(4))
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())


def verify(data: bytes, expected: Digest, what: str = "blob") -> None:
    actual = hashlib.new(expected.algorithm, data).hexdigest()
    if actual != expected.hex:
        raise DigestMismatch(f"{what}: digest mismatch: expected {expected}, "
                             f"got {expected.algorithm}:{actual}")
