"""Merging several ``-f`` files, following the compose-spec's merge rules (the subset
of keys dockyard supports): mappings merge key by key, ``environment`` and ``labels``
merge by variable, ``volumes`` by target, ``ports``/``dns``/``tmpfs``/``cap_*``/
``extra_hosts``/``env_file`` append, ``command``/``entrypoint``/``healthcheck.test``
and every other scalar or sequence are replaced."""

from __future__ import annotations

from typing import Any

APPENDED = frozenset({"ports", "dns", "tmpfs", "cap_add", "cap_drop", "extra_hosts",
                      "env_file"})
BY_KEY = frozenset({"environment", "labels"})


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key == "services" and isinstance(value, dict):
            services = dict(out.get("services") or {})
            for name, service in value.items():
                services[name] = merge_service(services.get(name) or {}, service or {})
            out[key] = services
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep(out[key], value)
        else:
            out[key] = value
    return out


def _deep(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep(out[key], value)
        else:
            out[key] = value
    return out


def merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if old is None:
            out[key] = value
        elif key in BY_KEY:
            out[key] = {**as_mapping(old), **as_mapping(value)}
        elif key in APPENDED:
            old_list = old if isinstance(old, list) else [old]
            new_list = value if isinstance(value, list) else [value]
            out[key] = old_list + [v for v in new_list if v not in old_list]
        elif key == "volumes" and isinstance(old, list) and isinstance(value, list):
            by_target = {_target(v): v for v in old}
            by_target.update({_target(v): v for v in value})
            out[key] = list(by_target.values())
        elif isinstance(value, dict) and isinstance(old, dict):
            out[key] = _deep(old, value)
        else:
            out[key] = value
    return out


def as_mapping(value: Any) -> dict[str, Any]:
    """``environment``/``labels`` as a mapping: ``["A=1", "B"]`` → ``{"A": "1", "B": None}``."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value or []:
        key, has_value, text = str(item).partition("=")
        out[key] = text if has_value else None
    return out


def _target(volume: Any) -> str:
    if isinstance(volume, dict):
        return str(volume.get("target", ""))
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else parts[0]
