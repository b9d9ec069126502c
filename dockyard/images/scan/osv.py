"""OSV-format vulnerability records (ossf.github.io/osv-schema) matched against a
catalog, offline: the user hands in the records (a JSON file holding one record or a
list of them, a directory of such files, or OSV's ``all.zip`` export).

A package is affected when a record names its ecosystem (``Debian:12`` counts as
Debian) and its name (Debian records name *source* packages, so a binary package
matches through its ``Source``; PyPI names are compared normalised), and its version
is listed in ``versions`` or falls in an ``ECOSYSTEM``/``SEMVER`` range
(``introduced`` … ``fixed`` exclusive, or … ``last_affected`` inclusive).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from dockyard.errors import InvalidArgument, NotFound
from dockyard.images.sbom.catalog import Package
from dockyard.images.scan.versions import Unordered, compare

RECORD_LIMIT = 16 << 20  # one JSON file (or zip member) of records
MAX_FILES = 500_000
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
_PEP503 = re.compile(r"[-_.]+")


class Match(NamedTuple):
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    package: Package
    fixed: str  # the first fixed version above the installed one, if the record says


# --- loading ------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record under ``path``; a malformed file is an error naming it."""
    where = Path(path)
    try:
        st = os.stat(where)
    except FileNotFoundError:
        raise NotFound(f"vulnerability database {where} does not exist") from None
    records: list[dict[str, Any]] = []
    if stat.S_ISDIR(st.st_mode):
        count = 0
        for dirpath, _dirs, files in os.walk(where):
            for name in sorted(files):
                if name.endswith((".json", ".zip")):
                    count += 1
                    if count > MAX_FILES:
                        raise InvalidArgument(f"{where}: more than {MAX_FILES} files")
                    records += _load_file(Path(dirpath) / name)
    else:
        records += _load_file(where)
    return records


def _load_file(path: Path) -> list[dict[str, Any]]:
    try:  # a FIFO or device named x.json is refused, not waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgument(f"{path}: not a regular file")
        if path.suffix == ".zip":
            return list(_load_zip(handle, path))
        try:
            data = handle.read(RECORD_LIMIT + 1)
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    return _records(data, str(path))


def _load_zip(handle: IO[bytes], path: Path) -> Iterator[dict[str, Any]]:
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > RECORD_LIMIT:
                    raise InvalidArgument(f"{path}:{info.filename}: larger than "
                                          f"{RECORD_LIMIT} bytes")
                with archive.open(info) as member:
                    data = member.read(RECORD_LIMIT + 1)
                yield from _records(data, f"{path}:{info.filename}")
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidArgument(f"{path}: not a readable zip archive ({exc})") from None


def _records(data: bytes, where: str) -> list[dict[str, Any]]:
    if len(data) > RECORD_LIMIT:
        raise InvalidArgument(f"{where}: larger than {RECORD_LIMIT} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{where}: not valid JSON ({exc})") from None
    items = doc if isinstance(doc, list) else [doc]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or \
                not isinstance(item.get("affected", []), list):
            raise InvalidArgument(f"{where}: not an OSV record (an object with an \"id\" "
                                  "and an \"affected\" list)")
    return items


# --- matching ---------------------------------------------------------------------
def _normal(ecosystem: str, name: str) -> str:
    return _PEP503.sub("-", name).lower() if ecosystem == "PyPI" else name


def _names_of(package: Package) -> set[str]:
    names = {_normal(package.ecosystem, package.name)}
    if package.source:
        names.add(package.source)
    return names


def match(records: list[dict[str, Any]], packages: list[Package]) -> list[Match]:
    by_key: dict[tuple[str, str], list[Package]] = {}
    for package in packages:
        if package.ecosystem:
            for name in _names_of(package):
                by_key.setdefault((package.ecosystem, name), []).append(package)
    found: dict[tuple[str, str, str], Match] = {}
    for record in records:
        for affected in record.get("affected") or []:
            if not isinstance(affected, dict) or not isinstance(affected.get("package"), dict):
                continue
            ecosystem = str(affected["package"].get("ecosystem", "")).split(":", 1)[0]
            name = _normal(ecosystem, str(affected["package"].get("name", "")))
            for package in by_key.get((ecosystem, name), []):
                hit, fixed = _affects(affected, ecosystem, package.version)
                key = (record["id"], package.name, package.location)
                if hit and key not in found:
                    found[key] = Match(record["id"], tuple(map(str, record.get("aliases") or [])),
                                       str(record.get("summary") or record.get("details") or "")
                                       .split("\n")[0][:200],
                                       severity_of(record, affected), package, fixed)
    return sorted(found.values(), key=lambda m: (-SEVERITIES.index(m.severity), m.id,
                                                 m.package.name))


def _affects(affected: dict[str, Any], ecosystem: str, version: str) -> tuple[bool, str]:
    versions = affected.get("versions") or []
    if isinstance(versions, list) and version in versions:
        return True, _first_fixed(affected, ecosystem, version)
    for entry in affected.get("ranges") or []:
        if not isinstance(entry, dict) or entry.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        try:
            if _in_range(entry, ecosystem, version):
                return True, _first_fixed(affected, ecosystem, version)
        except Unordered:
            continue
    return False, ""


def _in_range(entry: dict[str, Any], ecosystem: str, version: str) -> bool:
    """OSV's evaluation: events in version order; ``introduced`` opens, ``fixed`` and
    ``last_affected`` close."""
    kind = "npm" if entry["type"] == "SEMVER" else ecosystem

    def cmp(a: str, b: str) -> int:
        return compare(kind, a, b)

    events = [e for e in entry.get("events") or [] if isinstance(e, dict)]
    affected = False
    for event in _sorted_events(events, cmp):
        if "introduced" in event:
            start = str(event["introduced"])
            if start == "0" or cmp(version, start) >= 0:
                affected = True
        elif _closes(event, version, cmp):
            affected = False
    return affected


def _closes(event: dict[str, Any], version: str, cmp: Any) -> bool:
    if "fixed" in event:
        return bool(cmp(version, str(event["fixed"])) >= 0)
    if "last_affected" in event:
        return bool(cmp(version, str(event["last_affected"])) > 0)
    return False


def _sorted_events(events: list[dict[str, Any]], cmp: Any) -> list[dict[str, Any]]:
    import functools

    def value(event: dict[str, Any]) -> str:
        return str(next(iter(v for k, v in event.items()
                             if k in ("introduced", "fixed", "last_affected", "limit"))))

    def order(a: dict[str, Any], b: dict[str, Any]) -> int:
        va, vb = value(a), value(b)
        if va == "0" or vb == "0":
            return (va != "0") - (vb != "0")
        return int(cmp(va, vb))

    usable = [e for e in events if any(k in e for k in ("introduced", "fixed",
                                                        "last_affected", "limit"))]
    return sorted(usable, key=functools.cmp_to_key(order))


def _first_fixed(affected: dict[str, Any], ecosystem: str, version: str) -> str:
    fixes = []
    for entry in affected.get("ranges") or []:
        if not isinstance(entry, dict) or entry.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        kind = "npm" if entry["type"] == "SEMVER" else ecosystem
        for event in entry.get("events") or []:
            if isinstance(event, dict) and "fixed" in event:
                try:
                    if compare(kind, str(event["fixed"]), version) > 0:
                        fixes.append(str(event["fixed"]))
                except Unordered:
                    continue
    return fixes[0] if fixes else ""


# --- severity -----------------------------------------------------------------------
_WORDS = {"critical": "CRITICAL", "high": "HIGH", "important": "HIGH", "moderate": "MEDIUM",
          "medium": "MEDIUM", "low": "LOW", "negligible": "LOW", "unimportant": "LOW"}


def severity_of(record: dict[str, Any], affected: dict[str, Any]) -> str:
    """The worst of what the record says: CVSS v3 vectors (base score computed here),
    then ``database_specific``/``ecosystem_specific`` ``severity`` words."""
    found = []
    for item in [*(record.get("severity") or []), *(affected.get("severity") or [])]:
        if isinstance(item, dict) and str(item.get("type", "")).startswith("CVSS_V3"):
            score = cvss3_base_score(str(item.get("score", "")))
            if score is not None:
                found.append(_band(score))
    for holder in (record.get("database_specific"), affected.get("database_specific"),
                   affected.get("ecosystem_specific")):
        if isinstance(holder, dict) and isinstance(holder.get("severity"), str):
            word = _WORDS.get(holder["severity"].strip().lower())
            if word:
                found.append(word)
    return max(found, key=SEVERITIES.index) if found else "UNKNOWN"


def _band(score: float) -> str:
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    return "LOW" if score > 0 else "UNKNOWN"


_CVSS3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}, "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62}, "C": {"H": 0.56, "L": 0.22, "N": 0.0},
}


def _roundup(value: float) -> float:
    scaled = round(value * 100000)
    return scaled / 100000.0 if scaled % 10000 == 0 else (math.floor(scaled / 10000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.x base score of a vector (FIRST's specification, section 7.1)."""
    parts = dict(p.split(":", 1) for p in vector.split("/")[1:] if ":" in p)
    try:
        scope_changed = parts["S"] == "C"
        pr = {"N": 0.85, "L": 0.68 if scope_changed else 0.62,
              "H": 0.5 if scope_changed else 0.27}[parts["PR"]]
        impact_sub = 1 - ((1 - _CVSS3["C"][parts["C"]]) * (1 - _CVSS3["C"][parts["I"]]) *
                          (1 - _CVSS3["C"][parts["A"]]))
        exploitability = 8.22 * _CVSS3["AV"][parts["AV"]] * _CVSS3["AC"][parts["AC"]] * pr * \
            _CVSS3["UI"][parts["UI"]]
    except KeyError:
        return None
    if scope_changed:
        impact = 7.52 * (impact_sub - 0.029) - 3.25 * (impact_sub - 0.02) ** 15
    else:
        impact = 6.42 * impact_sub
    if impact <= 0:
        return 0.0
    total = impact + exploitability
    return _roundup(min(1.08 * total, 10) if scope_changed else min(total, 10))
