"""A scan's result as a table, JSON, or SARIF 2.1.0 (what code-scanning UIs read)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

from dockyard.images.scan.lint import Finding
from dockyard.images.scan.osv import SEVERITIES, Match

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note",
                "UNKNOWN": "note"}
_SECURITY_SEVERITY = {"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "2.0",
                      "UNKNOWN": "0.0"}


class ScanResult(NamedTuple):
    image: str
    image_id: str
    vulnerabilities: list[Match]
    findings: list[Finding]
    notes: list[str]

    def worst_at_least(self, threshold: str) -> int:
        """How many results are at or above ``threshold``."""
        floor = SEVERITIES.index(threshold)
        return sum(1 for s in self.severities() if SEVERITIES.index(s) >= floor)

    def severities(self) -> list[str]:
        return [m.severity for m in self.vulnerabilities] + [f.severity for f in self.findings]


def as_table(result: ScanResult) -> str:
    lines = []
    if result.vulnerabilities:
        rows: list[tuple[str, ...]] = [("ID", "SEVERITY", "PACKAGE", "INSTALLED", "FIXED",
                                         "TYPE")]
        rows += [(m.id, m.severity, m.package.name, m.package.version, m.fixed or "-",
                  m.package.type) for m in result.vulnerabilities]
        lines += _columns(rows)
    else:
        lines.append("no known vulnerabilities")
    lines.append("")
    if result.findings:
        rows = [("RULE", "SEVERITY", "WHERE", "FINDING")]
        rows += [(f.id, f.severity, f.location, f.title) for f in result.findings]
        lines += _columns(rows)
    else:
        lines.append("no hardening findings")
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for severity in result.severities():
        counts[severity] += 1
    lines += ["", "total: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) if
              any(counts.values()) else "total: 0"]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["   ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
            for r in rows]


def as_json(result: ScanResult) -> str:
    doc = {
        "image": result.image, "imageID": result.image_id,
        "vulnerabilities": [{
            "id": m.id, "aliases": list(m.aliases), "severity": m.severity,
            "summary": m.summary, "fixedVersion": m.fixed,
            "package": {"name": m.package.name, "version": m.package.version,
                        "type": m.package.type, "purl": m.package.purl,
                        "location": m.package.location}} for m in result.vulnerabilities],
        "findings": [f._asdict() for f in result.findings],
        "notes": result.notes,
    }
    return json.dumps(doc, indent=2) + "\n"


def as_sarif(result: ScanResult) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for m in result.vulnerabilities:
        rules.setdefault(m.id, _rule(m.id, m.summary or m.id, m.severity))
        text = (f"{m.package.name} {m.package.version} is affected by {m.id}"
                + (f" (fixed in {m.fixed})" if m.fixed else ""))
        results.append(_result(m.id, m.severity, text, m.package.location or result.image))
    for f in result.findings:
        rules.setdefault(f.id, _rule(f.id, f.title, f.severity))
        results.append(_result(f.id, f.severity, f.title, f.location))
    doc = {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "dockyard", "version": "0.1.0",
                                "informationUri": "https://dockyard.invalid/scan",
                                "rules": list(rules.values())}},
            "results": results,
            "properties": {"image": result.image, "imageID": result.image_id},
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


def _rule(rule_id: str, text: str, severity: str) -> dict[str, Any]:
    return {"id": rule_id, "shortDescription": {"text": text[:200] or rule_id},
            "defaultConfiguration": {"level": _SARIF_LEVEL[severity]},
            "properties": {"security-severity": _SECURITY_SEVERITY[severity],
                           "tags": ["security"]}}


def _result(rule_id: str, severity: str, text: str, where: str) -> dict[str, Any]:
    return {"ruleId": rule_id, "level": _SARIF_LEVEL[severity], "message": {"text": text},
            "locations": [{"physicalLocation": {"artifactLocation": {
                "uri": quote(where.lstrip("/") or "image")}}}]}


RENDERERS = {"table": as_table, "json": as_json, "sarif": as_sarif}
