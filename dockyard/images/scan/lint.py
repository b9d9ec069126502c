"""The hardening lint: what an image's config, history and layers give away.

Rules (ids are stable; severities as ``scan --severity`` ranks them):

=======  ========  =========================================================
DY001    MEDIUM    runs as root: no ``USER``, or ``USER`` root/0
DY002    CRITICAL  a secret-looking ``ENV`` (a token, key or password)
DY003    CRITICAL  a secret-looking string in the history (``created_by``)
DY004    CRITICAL  a secret file in a layer (``.env``, a PEM private key, ssh keys,
                   ``.npmrc``/``.pypirc``/``.git-credentials``/``.netrc`` with
                   credentials) — also when a later layer deleted it: it still
                   ships in the earlier layer
DY005    LOW       a setuid/setgid file in the image
DY006    MEDIUM    a world-writable file or directory (sticky directories such
                   as ``/tmp`` are fine)
DY007    MEDIUM    the base is ``latest`` or not pinned by digest (read from the
                   ``org.opencontainers.image.base.name``/``.digest`` labels)
DY008    HIGH      ``ADD`` of a URL without ``--checksum`` (history)
=======  ========  =========================================================
"""

from __future__ import annotations

import re
import stat
import tarfile
from typing import IO, Any, NamedTuple

from dockyard.fs.inroot import Root
from dockyard.fs.tree import Entry, walk
from dockyard.snapshots.unpack import members_of

SECRET_FILE_LIMIT = 256 << 10  # bytes of a candidate secret file that are read
_TOKEN_PATTERNS = [
    re.compile(p) for p in (
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",
        r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
        r"\bglpat-[A-Za-z0-9_-]{20,}\b", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b", r"\b[sr]k_live_[A-Za-z0-9]{20,}\b",
        r"\bnpm_[A-Za-z0-9]{36}\b", r"\bpypi-AgE[A-Za-z0-9_-]{50,}\b",
        r"\bAIza[0-9A-Za-z_-]{35}\b",
    )]
_SECRET_NAME = re.compile(r"(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
                          r"CREDENTIALS?)", re.IGNORECASE)
_HARMLESS_VALUES = {"", "true", "false", "yes", "no", "0", "1", "none", "null", "changeme"}
_SECRET_FILES = {".env", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".npmrc", ".pypirc",
                 ".git-credentials", ".netrc", ".pgpass", "credentials"}
_SECRET_SUFFIXES = (".pem", ".key", ".env", ".p12", ".pfx")
_CREDENTIAL_LINE = re.compile(r"(?:_authToken|_auth|password|passwd|token)\s*[=:]\s*\S",
                              re.IGNORECASE)
WALK_SKIP = {"proc", "sys", "dev"}


class Finding(NamedTuple):
    id: str
    severity: str
    title: str
    location: str  # "config", "history[3]", "layer 2: etc/app/.env", "/usr/bin/x"


def _looks_secret(text: str) -> bool:
    return any(p.search(text) for p in _TOKEN_PATTERNS)


def _redact(text: str) -> str:
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: m.group(0)[:4] + "…", text)
    return text[:120]


def config_findings(config: dict[str, Any]) -> list[Finding]:
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    assert isinstance(inner, dict)
    found = []
    user = str(inner.get("User") or "")
    if user.split(":")[0] in ("", "root", "0"):
        found.append(Finding("DY001", "MEDIUM", "the image runs as root (no USER, or USER "
                             "root): set a USER without privileges", "config.User"))
    for item in inner.get("Env") or []:
        key, _, value = str(item).partition("=")
        named = bool(_SECRET_NAME.search(key)) and value.strip().lower() not in \
            _HARMLESS_VALUES and not value.startswith("/")
        if named or _looks_secret(value):
            found.append(Finding("DY002", "CRITICAL", f"ENV {key} looks like a secret: it is "
                                 "stored in the image config for anyone to read",
                                 f"config.Env {key}"))
    labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    assert isinstance(labels, dict)
    base = str(labels.get("org.opencontainers.image.base.name") or "")
    if base and ("@sha256:" not in base and not labels.get(
            "org.opencontainers.image.base.digest")):
        tagged = base.rsplit("/", 1)[-1]
        what = "latest" if ":" not in tagged or tagged.endswith(":latest") else "not pinned"
        found.append(Finding("DY007", "MEDIUM", f"the base image {base} is {what}: pin it "
                             "by digest (build --pin)", "config.Labels"))
    for index, entry in enumerate(config.get("history") or []):
        if not isinstance(entry, dict):
            continue
        text = str(entry.get("created_by") or "")
        if _looks_secret(text):
            found.append(Finding("DY003", "CRITICAL", "a secret-looking string in the "
                                 f"history: {_redact(text)}", f"history[{index}]"))
        if re.search(r"\bADD\b", text) and re.search(r"\bhttps?://", text) and \
                "--checksum" not in text:
            found.append(Finding("DY008", "HIGH", "ADD of a URL without --checksum: "
                                 f"{text.split('#')[0].strip()[:120]}", f"history[{index}]"))
    return found


def tree_findings(rootfs: str) -> list[Finding]:
    """Set-id and world-writable entries of the mounted image (one descriptor walk)."""
    found = []

    def descend(entry: Entry) -> bool:
        return entry.relative not in WALK_SKIP

    with Root(rootfs, what="image") as root:
        for entry in walk(root.fd, descend=descend):
            mode = entry.stat.st_mode
            path = "/" + entry.relative
            if stat.S_ISLNK(mode):
                continue
            if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                kind = "setuid" if mode & stat.S_ISUID else "setgid"
                found.append(Finding("DY005", "LOW", f"{kind} file (mode "
                                     f"{stat.S_IMODE(mode):04o})", path))
            if mode & stat.S_IWOTH and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX) and \
                    (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                found.append(Finding("DY006", "MEDIUM", "world-writable "
                                     f"{'directory' if stat.S_ISDIR(mode) else 'file'}", path))
    return found


def _secret_candidate(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base in _SECRET_FILES or base.endswith(_SECRET_SUFFIXES) or \
        base.startswith(".env.")


def layer_findings(number: int, stream: IO[bytes]) -> list[Finding]:
    """Secret files in one layer's tar (headers streamed; candidates' first
    ``SECRET_FILE_LIMIT`` bytes read), whether or not a later layer deletes them."""
    found = []
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in members_of(archive):  # (each forgotten: big headers add up)
            name = member.name.lstrip("./")
            if not member.isreg() or not _secret_candidate(name):
                continue
            handle = archive.extractfile(member)
            head = handle.read(SECRET_FILE_LIMIT) if handle is not None else b""
            text = head.decode("utf-8", "replace")
            base = name.rsplit("/", 1)[-1]
            if _looks_secret(text):
                what = "a private key or token"
            elif (base == ".env" or base.startswith(".env.") or base.endswith(".env")) and \
                    any("=" in line for line in text.splitlines()):
                what = "an environment file"
            elif base in _SECRET_FILES and _CREDENTIAL_LINE.search(text):
                what = "credentials"
            else:
                continue
            found.append(Finding("DY004", "CRITICAL", f"{what} in a layer (deleting it in a "
                                 "later layer does not remove it from this one)",
                                 f"layer {number}: {name}"))
    return found
