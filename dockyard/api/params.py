"""Query parameters and JSON bodies as Docker's clients send them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockyard.errors import InvalidArgument


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: 1/true/True (and 0/false/""); anything else 400."""
    value = request.query.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no", ""):
        return False
    raise InvalidArgument(f"invalid value for {name}: {value!r} (want 1, true, 0 or false)")


def integer(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r} (want an integer)") \
            from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """``filters={"label":["a=b"]}`` (or the old ``{"label":{"a=b":true}}``)."""
    text = request.query.get("filters")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filters: {exc}") from None
    except RecursionError:
        raise InvalidArgument("invalid filters: nested too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filters: want a JSON object")
    result: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            values = [k for k, on in values.items() if on]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"invalid filters: {key}: want a list of strings")
        result[str(key)] = values
    return result


async def json_body(request: web.Request) -> Any:
    """The body as JSON (an empty body is null); malformed JSON is a 400."""
    data = await request.read()
    if not data.strip():
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise InvalidArgument("invalid JSON body: nested too deeply") from None
    _check_strings(value)
    return value


def _check_strings(value: Any) -> None:
    """No string of a body may hold a NUL (no argv, environment, path or name can) or a
    lone surrogate (it cannot be written as UTF-8)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\0" in item:
                raise InvalidArgument(f"invalid JSON body: NUL byte in {item[:40]!r}")
            try:
                item.encode()
            except UnicodeEncodeError:
                raise InvalidArgument(f"invalid JSON body: lone surrogate in "
                                      f"{item[:40]!r}") from None
