"""Output of list and inspect commands: Docker's tables, ``--format json`` and Go templates.

``--format`` takes what Docker's does, evaluated by :mod:`dockyard.cli.gotemplate`:

* list commands (``ps``, ``images``, ``network ls`` …) run the template once per
  row; ``table`` before it adds a header row (the same template over the column
  names, Docker's way) and aligns columns as Go's tabwriter does; ``json`` is
  ``{{json .}}``; ``\\t`` and ``\\n`` in the text become a tab and a newline.
* inspect commands run it once per document; ``json`` prints one compact array.

A template that does not parse or run is Docker's one-line error
(``template parsing error: template: :1:2: executing "" at <.Foo>: …``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dockyard.cli.errors import report
from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    from dockyard.cli.gotemplate import Template


def _go() -> ModuleType:
    """The template engine, imported when a template or a Go value is printed (~7 ms
    that a plain table does not need)."""
    from dockyard.cli import gotemplate

    return gotemplate


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else str(_go().format_value(value))

# Docker's exit status when an inspect template does not parse (cli.StatusError 64)
EXIT_BAD_INSPECT_TEMPLATE = 64


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str | None,
           headers: dict[str, str] | None = None) -> str:
    """A list command's output, without the final newline.

    ``columns`` make the default table; ``headers`` name them (and any other field
    whose header is not its name split into upper-case words: ``CreatedAt`` is
    ``CREATED AT``).  With no columns, ``rows`` are documents to inspect.
    """
    if not columns:
        return render_inspect(rows, fmt)
    if fmt in (None, "", "table"):   # Docker's default table, without a template (a
        #                              column such as top's "%CPU" is not a field name)
        lines = ["\t".join((headers or {}).get(c) or column_name(c) for c in columns)]
        lines += ["\t".join(_cell(row.get(c, "")) for c in columns) for row in rows]
        return tabwrite("\n".join(lines))
    if fmt == "json":
        fmt = "{{json .}}"
    table = fmt.startswith("table")
    text = re.sub(r"\\[tn]", lambda m: "\t" if m.group() == "\\t" else "\n",
                  (fmt[len("table"):] if table else fmt).strip(" "))
    template = _parse(text)
    out = []
    for row in rows:
        # a Docker formatting context marshals as a map: keys in order
        out.append(_execute(template, {k: row[k] for k in sorted(row)}) + "\n")
    if not table:
        return "".join(out).removesuffix("\n")
    header = _header(template, headers or {})
    return tabwrite(header + "\n" + "".join(out)).removesuffix("\n")


def render_inspect(docs: Sequence[Mapping[str, Any]], fmt: str | None) -> str:
    """An inspect command's output: indented JSON, ``json`` (compact), or a template."""
    if not fmt:
        return json.dumps(list(docs), indent=4)
    if fmt == "json":
        return go_marshal(list(docs))
    try:
        template = _go().Template(fmt)
    except _go().TemplateError as exc:
        report(InvalidArgument(f"template parsing error: {exc}"))
        raise SystemExit(EXIT_BAD_INSPECT_TEMPLATE) from None
    lines, errors = [], []
    for doc in docs:
        try:
            lines.append(template.execute(doc))
        except _go().TemplateError as exc:
            errors.append(f"template parsing error: {exc}")
    if errors:
        if lines:   # as Docker: the documents that did render, then the errors
            print("\n".join(lines), flush=True)
        raise InvalidArgument("\n".join(errors))
    return "\n".join(lines)


def _parse(text: str) -> Template:
    try:
        template: Template = _go().Template(text)
        return template
    except _go().TemplateError as exc:
        raise InvalidArgument(f"template parsing error: {exc}") from None


def _execute(template: Template, data: Any) -> str:
    try:
        return template.execute(data)
    except _go().TemplateError as exc:
        raise InvalidArgument(f"template parsing error: {exc}") from None


class _HeaderRow(dict[str, Any]):
    """Every field's column name: given, or the field's name in upper-case words."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __missing__(self, key: str) -> str:
        return column_name(key)


def column_name(field: str) -> str:
    """Docker's header for a field it names plainly: ``CreatedAt`` → ``CREATED AT``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", field).upper()


def _label_header(name: str) -> str:
    """Docker's header for ``{{.Label "com.example.my-label"}}``: ``my label``."""
    return name.split(".")[-1].replace("-", " ").replace("_", " ")


def _header(template: Template, headers: Mapping[str, str]) -> str:
    names = _HeaderRow(headers, Label=_label_header)
    out: list[str] = []
    # Docker ignores a header that fails (``{{json .}}``): what was written stays
    go = _go()
    with contextlib.suppress(go.TemplateError):
        template.execute(names, missing_key_error=False, functions=go.HEADER_FUNCTIONS, out=out)
    return "".join(out)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``, as Docker's tables use it.

    A cell is text ended by a tab (the text after a line's last tab is not a cell);
    a column is as wide as its widest cell plus ``padding``, at least ``minwidth``,
    over each run of consecutive lines that have that cell.
    """
    cells = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(row) - 1) for row in cells]
    for column in range(max(len(row) for row in cells) - 1):
        i = 0
        while i < len(cells):
            if len(cells[i]) - 1 <= column:
                i += 1
                continue
            j = i
            while j < len(cells) and len(cells[j]) - 1 > column:
                j += 1
            width = max([minwidth] + [len(cells[k][column]) + padding for k in range(i, j)])
            for k in range(i, j):
                widths[k][column] = width
            i = j
    return "\n".join("".join(cell.ljust(width) for cell, width in zip(row, widths[n], strict=False))
                     + row[-1] for n, row in enumerate(cells))


def go_marshal(value: Any) -> str:
    """Go's ``json.Marshal``: compact, with ``<``, ``>`` and ``&`` escaped."""
    return str(_go().to_json(value)).replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026")


def go_time(iso: str, fraction: bool = False) -> str:
    """Go's ``time.Time.String()`` in local time, as Docker's ``CreatedAt`` columns show
    (whole seconds, as the API's Unix times, unless ``fraction``)."""
    import datetime

    try:
        when = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    seconds = f".{when.microsecond:06d}".rstrip("0") if fraction and when.microsecond else ""
    return when.strftime("%Y-%m-%d %H:%M:%S") + seconds + when.strftime(" %z ") + \
        (when.tzname() or "")


def go_rfc3339(iso: str) -> str:
    """Go's ``time.RFC3339`` in local time, whole seconds (``docker history``'s CreatedAt)."""
    import datetime

    try:
        when = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    text = when.replace(microsecond=0).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def labels_text(labels: Mapping[str, str] | None) -> str:
    """Docker's ``.Labels`` column: ``k=v,k2=v2``."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def label_method(labels: Mapping[str, str] | None) -> Any:
    """Docker's ``{{.Label "key"}}``: the value, or "" without it."""
    return lambda name: (labels or {}).get(name, "")


def container_fields(doc: Mapping[str, Any], trunc: bool = True) -> dict[str, Any]:
    """The ``ps --format`` fields Docker derives from a container: ``CreatedAt``,
    ``Labels``, ``Label``, ``Mounts``, ``LocalVolumes`` and ``Networks``."""
    labels = (doc.get("Config") or {}).get("Labels") or {}
    mounts = doc.get("Mounts") or []
    names = []
    for mount in mounts:
        name = mount.get("Name") or mount.get("Source") or ""
        if trunc:   # Docker's TruncateID: past any "algo:", 12 characters
            name = name.split(":", 1)[-1][:12]
        names.append(name)
    networks = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    return {"CreatedAt": go_time(doc.get("Created", "")), "Labels": labels_text(labels),
            "Label": label_method(labels), "Mounts": ",".join(names),
            "LocalVolumes": str(sum(1 for m in mounts if m.get("Type") == "volume")),
            "Networks": ",".join(sorted(networks))}


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
