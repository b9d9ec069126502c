"""Lowering: a resolved compose document → a typed ``ProjectPlan`` whose services hold
the same ``ContainerSpec`` that ``dockyard run`` builds from its flags (the text forms
are parsed by the same ``engine.flags`` functions)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.compose.labels import NETWORK, PROJECT, VOLUME, service_labels
from dockyard.compose.loader import LoadedProject
from dockyard.compose.merge import as_mapping
from dockyard.compose.order import start_order
from dockyard.engine.flags import (
    env_file,
    parse_duration,
    parse_publish,
    parse_restart,
)
from dockyard.engine.spec import ContainerSpec, Healthcheck, MountSpec, PortSpec, TmpfsMount
from dockyard.errors import InvalidArgument, NotImplementedFeature

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


class NetworkPlan(NamedTuple):
    key: str  # the name in the file
    name: str  # <project>_<key>, or its `name:`
    internal: bool
    labels: dict[str, str]
    external: bool


class VolumePlan(NamedTuple):
    key: str
    name: str
    options: dict[str, str]
    labels: dict[str, str]
    external: bool


class ServicePlan(NamedTuple):
    name: str
    spec: ContainerSpec  # name unset; labels without the container number
    replicas: int
    depends_on: dict[str, str]  # service → condition
    networks: tuple[tuple[str, tuple[str, ...]], ...]  # (network name, aliases); first: primary
    config_hash: str


class ProjectPlan(NamedTuple):
    name: str
    working_dir: Path
    config_files: tuple[Path, ...]
    services: dict[str, ServicePlan]  # in start order
    networks: dict[str, NetworkPlan]
    volumes: dict[str, VolumePlan]
    doc: dict[str, Any]


def lower(project: LoadedProject) -> ProjectPlan:
    """The plan; an error names the file(s) it comes from."""
    try:
        return _lower(project)
    except (InvalidArgument, NotImplementedFeature) as exc:
        files = ", ".join(str(p) for p in project.config_files)
        raise type(exc)(f"{files}: {exc}") from None


def _lower(project: LoadedProject) -> ProjectPlan:
    doc = project.doc
    services_doc: dict[str, Any] = doc.get("services") or {}
    if not services_doc:
        raise InvalidArgument(f"{project.config_files[0]}: no service is defined")
    networks = _networks(project)
    volumes = _volumes(project)
    order = start_order({name: _depends_on(name, s or {}, services_doc)
                         for name, s in services_doc.items()})
    services = {name: _service(project, name, services_doc[name] or {}, networks, volumes)
                for name in order}
    used = {net for s in services.values() for net, _ in s.networks}
    networks = {k: n for k, n in networks.items() if n.name in used}
    return ProjectPlan(project.name, project.working_dir, project.config_files, services,
                       networks, volumes, doc)


def _networks(project: LoadedProject) -> dict[str, NetworkPlan]:
    declared: dict[str, Any] = dict(project.doc.get("networks") or {})
    declared.setdefault("default", None)
    out = {}
    for key, item in declared.items():
        item = item or {}
        external = bool(item.get("external"))
        driver = item.get("driver", "bridge")
        if driver != "bridge":
            raise NotImplementedFeature(f"networks.{key}.driver: {driver!r} is not supported "
                                        "(bridge only)")
        name = item.get("name") or (key if external else f"{project.name}_{key}")
        labels = {**as_labels(item.get("labels")), PROJECT: project.name, NETWORK: key}
        out[key] = NetworkPlan(key, name, bool(item.get("internal")), labels, external)
    return out


def _volumes(project: LoadedProject) -> dict[str, VolumePlan]:
    out = {}
    for key, item in (project.doc.get("volumes") or {}).items():
        item = item or {}
        external = bool(item.get("external"))
        if item.get("driver", "local") != "local":
            raise NotImplementedFeature(f"volumes.{key}.driver: only local is supported")
        name = item.get("name") or (key if external else f"{project.name}_{key}")
        options = {str(k): str(v) for k, v in (item.get("driver_opts") or {}).items()}
        labels = {**as_labels(item.get("labels")), PROJECT: project.name, VOLUME: key}
        out[key] = VolumePlan(key, name, options, labels, external)
    return out


def as_labels(value: Any) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in as_mapping(value).items()}


def _depends_on(name: str, service: dict[str, Any],
                services: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    deps = {d: {} for d in raw} if isinstance(raw, list) else dict(raw)
    out = {}
    for dep, options in deps.items():
        if dep not in services:
            raise InvalidArgument(f"service {name!r} depends on undefined service {dep!r}: "
                                  "invalid compose project")
        condition = (options or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            raise InvalidArgument(f"services.{name}.depends_on.{dep}.condition: "
                                  f"{condition!r} is not one of {', '.join(CONDITIONS)}")
        out[dep] = condition
    return out


def _service(project: LoadedProject, name: str, service: dict[str, Any],
             networks: dict[str, NetworkPlan], volumes: dict[str, VolumePlan]) -> ServicePlan:
    where = f"services.{name}"
    image = service.get("image")
    if not image:
        raise InvalidArgument(f"{where}: service has no image (build is not supported yet)")
    mounts, tmpfs = _mounts(project, name, service.get("volumes") or [], volumes)
    tmpfs += tuple(_tmpfs(service.get("tmpfs")))
    spec = ContainerSpec(
        image=str(image), command=_argv(service.get("command")),
        entrypoint=_argv(service.get("entrypoint")),
        env=_environment(project, service),
        working_dir=service.get("working_dir"), user=_opt_str(service.get("user")),
        hostname=service.get("hostname"),
        read_only=bool(service.get("read_only")), init=bool(service.get("init")),
        privileged=bool(service.get("privileged")),
        cap_add=tuple(service.get("cap_add") or ()), cap_drop=tuple(service.get("cap_drop") or ()),
        restart=parse_restart(str(service.get("restart") or "no")),
        stop_signal=service.get("stop_signal"),
        stop_timeout=_seconds(service.get("stop_grace_period"), f"{where}.stop_grace_period"),
        extra_hosts=_extra_hosts(service.get("extra_hosts")),
        dns=tuple(_as_list(service.get("dns"))),
        healthcheck=_healthcheck(service.get("healthcheck"), where),
        no_healthcheck=bool((service.get("healthcheck") or {}).get("disable")),
        mounts=mounts, tmpfs=tmpfs, ports=_ports(service.get("ports") or [], where))
    service_networks = _service_networks(name, service, networks)
    depends = _depends_on(name, service, {d: None for d in _dep_names(service)})
    config_hash = _hash(spec, service_networks)
    spec = spec._replace(labels={**as_labels(service.get("labels")),
                                 **service_labels(project, name, config_hash, depends)})
    replicas = int((service.get("deploy") or {}).get("replicas", 1))
    return ServicePlan(name, spec, replicas, depends, service_networks, config_hash)


def _dep_names(service: dict[str, Any]) -> list[str]:
    return list(service.get("depends_on") or [])


def _hash(spec: ContainerSpec, networks: Any) -> str:
    """Compose's ``config-hash``: the service as it will run (replicas excluded, so a
    scale change recreates nothing)."""
    text = json.dumps([spec._asdict(), networks], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _argv(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(shlex.split(value))
    return tuple(str(v) for v in value)


def _environment(project: LoadedProject, service: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for item in _env_files(service.get("env_file")):
        path = (project.working_dir / item["path"])
        if not path.is_file() and not item.get("required", True):
            continue
        out += env_file(str(path))
    for key, value in as_mapping(service.get("environment")).items():
        if value is None:  # `- NAME`: from the environment, dropped when unset there
            if key in project.env:
                out.append(f"{key}={project.env[key]}")
            continue
        out.append(f"{key}={_scalar(value)}")
    return tuple(out)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env_files(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else ([value] if value else [])
    return [{"path": i} if isinstance(i, str) else dict(i) for i in items]


def _seconds(value: Any, where: str) -> int | None:
    if value is None:
        return None
    return int(parse_duration(str(value), where, 0.0))


def _extra_hosts(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict):
        return tuple(f"{host}:{ip}" for host, ip in value.items())
    out = []
    for item in value or []:
        host, sep, ip = str(item).partition("=")
        out.append(f"{host}:{ip}" if sep else str(item))
    return tuple(out)


def _healthcheck(value: Any, where: str) -> Healthcheck | None:
    if not value or value.get("disable"):
        return None
    test = value.get("test")
    if isinstance(test, str):
        test_tuple: tuple[str, ...] = ("CMD-SHELL", test)
    elif test:
        test_tuple = tuple(str(t) for t in test)
        if test_tuple[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise InvalidArgument(f"{where}.healthcheck.test: must start with CMD, CMD-SHELL "
                                  "or NONE")
    else:
        test_tuple = ()
    at = f"{where}.healthcheck"
    return Healthcheck(test_tuple,
                       parse_duration(_opt_str(value.get("interval")), f"{at}.interval", 30.0),
                       parse_duration(_opt_str(value.get("timeout")), f"{at}.timeout", 30.0),
                       int(value.get("retries", 3)),
                       parse_duration(_opt_str(value.get("start_period")), f"{at}.start_period",
                                      0.0))


def _ports(items: list[Any], where: str) -> tuple[PortSpec, ...]:
    out: list[PortSpec] = []
    for item in items:
        if isinstance(item, dict):
            published = str(item.get("published") or "")
            text = f"{published}:{item['target']}" if published else str(item["target"])
            if item.get("host_ip"):
                text = f"{item['host_ip']}:{text}"
            out += parse_publish(f"{text}/{item.get('protocol', 'tcp')}")
        else:
            out += parse_publish(str(item))
    return tuple(out)


def _tmpfs(value: Any) -> list[TmpfsMount]:
    return [TmpfsMount(*item.split(":", 1)) for item in _as_list(value)]


def _mounts(project: LoadedProject, service: str, items: list[Any],
            volumes: dict[str, VolumePlan]) -> tuple[tuple[MountSpec, ...], tuple[TmpfsMount, ...]]:
    mounts: list[MountSpec] = []
    tmpfs: list[TmpfsMount] = []
    for index, item in enumerate(items):
        where = f"services.{service}.volumes[{index}]"
        long = item if isinstance(item, dict) else _short_volume(str(item), where)
        kind, source, target = long.get("type"), long.get("source") or "", long["target"]
        readonly = bool(long.get("read_only"))
        if kind == "tmpfs":
            size = (long.get("tmpfs") or {}).get("size")
            tmpfs.append(TmpfsMount(target, f"size={size}" if size else ""))
        elif kind == "bind":
            path = Path(os.path.expanduser(source))
            path = path if path.is_absolute() else project.working_dir / path
            create = bool((long.get("bind") or {}).get("create_host_path", True))
            mounts.append(MountSpec("bind", os.path.normpath(path), target, readonly,
                                    create_host_path=create))
        elif kind == "volume":
            if source and source not in volumes:
                raise InvalidArgument(f"service {service!r} refers to undefined volume "
                                      f"{source}: invalid compose project ({where})")
            name = volumes[source].name if source else ""
            mounts.append(MountSpec("volume", name, target, readonly))
        else:
            raise NotImplementedFeature(f"{where}: volume type {kind!r} is not supported")
    return tuple(mounts), tuple(tmpfs)


def _short_volume(text: str, where: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3:
        raise InvalidArgument(f"{where}: invalid volume specification {text!r}")
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    source = parts[0]
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    return {"type": kind, "source": source, "target": parts[1], "read_only": "ro" in modes}


def _service_networks(name: str, service: dict[str, Any],
                      networks: dict[str, NetworkPlan]
                      ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    raw = service.get("networks")
    if raw is None:
        raw = {"default": None}
    items = {n: None for n in raw} if isinstance(raw, list) else dict(raw)
    out = []
    for key, options in items.items():
        if key not in networks:
            raise InvalidArgument(f"service {name!r} refers to undefined network {key}: "
                                  "invalid compose project")
        aliases = tuple(str(a) for a in (options or {}).get("aliases") or ())
        extra = sorted(set(options or {}) - {"aliases"})
        if extra:
            raise NotImplementedFeature(f"services.{name}.networks.{key}: not supported by "
                                        f"dockyard compose yet: {', '.join(extra)}")
        out.append((networks[key].name, (name, *aliases)))
    return tuple(out)
