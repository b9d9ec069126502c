"""Rendering for list commands: Docker's table, ``--format json`` and Go-like templates.

``--format '{{.Repository}}:{{.Tag}}'`` substitutes fields; ``table`` prefixes a
header row; ``json`` prints one JSON object per line, as ``docker images
--format json`` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_FIELD = re.compile(r"{{\s*\.(\w+)\s*}}")
_JSON_ALL = re.compile(r"{{\s*json\s+\.\s*}}")


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str | None,
           headers: dict[str, str] | None = None) -> str:
    if fmt in (None, "", "table"):
        template = "table " + "\t".join("{{." + c + "}}" for c in columns)
    elif fmt == "json":
        return "\n".join(json.dumps(row) for row in rows)
    else:
        template = fmt
    header = template.startswith("table ")
    body = template.removeprefix("table ").strip() if header else template
    lines = []
    if header:
        names = headers or {}
        lines.append(_FIELD.sub(lambda m: names.get(m.group(1), m.group(1).upper()), body))
    for row in rows:
        lines.append(_fill(body, row))
    if header:
        return _align(lines)
    return "\n".join(lines)


def _fill(template: str, row: dict[str, Any]) -> str:
    line = _JSON_ALL.sub(lambda _m: json.dumps(row), template)
    line = _FIELD.sub(lambda m: str(row.get(m.group(1), "")), line)
    return line.replace("\\t", "\t").replace("\\n", "\n")


def _align(lines: list[str]) -> str:
    cells = [line.split("\t") for line in lines]
    widths = [max(len(row[i]) if i < len(row) else 0 for row in cells)
              for i in range(max(len(r) for r in cells))]
    return "\n".join("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                     for row in cells)


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size}GB"


_UNITS = (("second", 1, 60), ("minute", 60, 3600), ("hour", 3600, 86400),
          ("day", 86400, 86400 * 30), ("month", 86400 * 30, 86400 * 365))


def human_ago(iso: str) -> str:
    """Docker's "5 minutes ago" from an RFC 3339 time."""
    import datetime

    try:
        then = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso or "N/A"
    seconds = (datetime.datetime.now(datetime.UTC) - then).total_seconds()
    if seconds < 1:
        return "Less than a second ago"
    for unit, divisor, limit in _UNITS:
        if seconds < limit:
            value = int(seconds // divisor)
            return f"{value} {unit}{'s' if value != 1 else ''} ago"
    years = int(seconds // (86400 * 365))
    return f"{years} year{'s' if years != 1 else ''} ago"
