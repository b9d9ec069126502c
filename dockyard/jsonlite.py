"""``json.loads`` and ``json.dumps`` for the runtime's every call, without ``json``.

The ``json`` package compiles seven regular expressions when it is imported, and so
imports ``re``: ~3 ms of the ~30 a ``dockyard-runtime`` command costs, where the
parsing and writing themselves are done by the C accelerator ``_json`` either way.
This module drives ``_json`` the way ``json`` does (same scanner and encoder, same
defaults: ``ensure_ascii``, NaN allowed, ``", "``/``": "``), and writes the indented
form (``state``'s output) itself, the way ``json.dumps(indent=N)`` lays it out.  A
document it cannot take (bad JSON, a value that is not JSON) gets ``json``'s own
error, from ``json`` imported then: errors are not on the hot path.
"""

from __future__ import annotations

from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, NoReturn

from _json import encode_basestring_ascii as _quote
from _json import make_encoder as _make_encoder
from _json import make_scanner as _make_scanner

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _ScanContext:
    """What ``_json.make_scanner`` reads off a ``JSONDecoder``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _not_json(value: object) -> object:
    """``JSONEncoder.default``: what is not JSON is a TypeError, in json's words."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_scan = _make_scanner(_ScanContext())  # type: ignore[arg-type]  # duck-typed decoder


def _encode(value: object) -> str:
    """json.dumps's defaults: circular check, ensure_ascii, ": " and ", ", NaN allowed.
    An encoder a call, as json makes: its circular-check markers are left filled by an
    encode that failed, and would refuse the same objects afterwards."""
    encoder = _make_encoder({}, _not_json, _quote, None, ": ", ", ", False, False, True)
    return "".join(encoder(value, 0))


def loads(document: str | bytes) -> Any:
    """``json.loads`` of a UTF-8 or str document."""
    text = document.decode() if isinstance(document, (bytes, bytearray)) else document
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        _fail("Expecting value", text, err.value)
    tail = text[end:]
    if tail.strip(_WHITESPACE):
        _fail("Extra data", text, end + len(tail) - len(tail.lstrip(_WHITESPACE)))
    return value


def dumps(value: object, indent: int | None = None) -> str:
    """``json.dumps(value)`` or ``json.dumps(value, indent=indent)``."""
    if indent is None:
        return _encode(value)
    parts: list[str] = []
    try:
        _indented(value, " " * indent, "\n", parts)
    except _NotPlain:  # a key json converts to a string: json lays it out
        import json

        return json.dumps(value, indent=indent)
    return "".join(parts)


class _NotPlain(Exception):
    """A key that is not a string: json converts it (left to json)."""


def _indented(value: object, step: str, newline: str, parts: list[str]) -> None:
    """``json.dumps(indent=…)``'s layout: one member per line, ``","`` between, ``": "``
    after a key, empty containers as ``{}`` and ``[]``."""
    if isinstance(value, dict) and value:
        inner = newline + step
        parts.append("{")
        for index, (key, member) in enumerate(value.items()):
            if not isinstance(key, str):
                raise _NotPlain(key)
            parts.append(("," if index else "") + inner + _quote(key) + ": ")
            _indented(member, step, inner, parts)
        parts.append(newline + "}")
    elif isinstance(value, (list, tuple)) and value:
        inner = newline + step
        parts.append("[")
        for index, member in enumerate(value):
            parts.append(("," if index else "") + inner)
            _indented(member, step, inner, parts)
        parts.append(newline + "]")
    else:
        parts.append(_encode(value))


def _fail(reason: str, text: str, at: int) -> NoReturn:
    from json import JSONDecodeError

    raise JSONDecodeError(reason, text, at) from None
