"""Variable interpolation in compose files, as the compose-spec defines it.

``$VAR`` and ``${VAR}``; ``${VAR:-default}`` (unset or empty) and ``${VAR-default}``
(unset); ``${VAR:?message}`` and ``${VAR?message}`` (an error); ``${VAR:+alt}`` and
``${VAR+alt}``; ``$$`` is a literal ``$``.  Defaults may themselves hold variables.
Values are interpolated, keys are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dockyard.errors import InvalidArgument

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MissingVariable(InvalidArgument):
    """A ``${VAR:?message}`` whose variable is unset (or empty)."""


def interpolate(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Every string in ``value`` (a YAML tree) interpolated; ``where`` names the path
    in errors (``services.web.image``)."""
    if isinstance(value, str):
        return substitute(value, env, where)
    if isinstance(value, dict):
        return {key: interpolate(item, env, f"{where}.{key}" if where else str(key))
                for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def substitute(text: str, env: Mapping[str, str], where: str = "") -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1:index + 2]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 2, where)
            out.append(_braced(text[index + 2:end], env, where))
            index = end + 1
        else:
            match = _NAME.match(text, index + 1)
            if match is None:  # a lone "$": kept, as Compose does
                out.append("$")
                index += 1
            else:
                out.append(env.get(match.group(0), ""))
                index = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int, where: str) -> int:
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise InvalidArgument(f"{_at(where)}invalid interpolation format for {text!r}: "
                          "unclosed \"${\"")


def _braced(body: str, env: Mapping[str, str], where: str) -> str:
    match = _NAME.match(body)
    if match is None:
        raise InvalidArgument(f"{_at(where)}invalid interpolation format: \"${{{body}}}\"")
    name, rest = match.group(0), body[match.end():]
    if not rest:
        return env.get(name, "")
    value = env.get(name)
    for operator in (":-", ":?", ":+", "-", "?", "+"):
        if not rest.startswith(operator):
            continue
        argument = rest[len(operator):]
        unset = value is None or (operator.startswith(":") and value == "")
        if operator.endswith("-"):
            return substitute(argument, env, where) if unset else str(value)
        if operator.endswith("+"):
            return "" if unset else substitute(argument, env, where)
        if unset:
            message = substitute(argument, env, where) or f"variable {name} is not set"
            raise MissingVariable(f"{_at(where)}required variable {name} is missing a value: "
                                  f"{message}")
        return str(value)
    raise InvalidArgument(f"{_at(where)}invalid interpolation format: \"${{{body}}}\"")


def _at(where: str) -> str:
    return f"{where}: " if where else ""
