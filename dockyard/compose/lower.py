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
from typing import Any

from dockyard import __version__
from dockyard.compose import sources
from dockyard.compose.labels import (
    CONFIG_HASH,
    NETWORK,
    PROJECT,
    VERSION,
    VOLUME,
    service_labels,
)
from dockyard.compose.loader import LoadedProject
from dockyard.compose.merge import as_mapping
from dockyard.compose.order import start_order
from dockyard.compose.plan import (
    Attachment,
    BuildPlan,
    FilePlan,
    Hook,
    NetworkPlan,
    ProjectPlan,
    ServicePlan,
    VolumePlan,
    WatchRule,
)
from dockyard.engine.flags import (
    env_file,
    parse_bytes,
    parse_cpus,
    parse_duration,
    parse_publish,
    parse_restart,
    restart_policy,
)
from dockyard.engine.spec import (
    BlkioThrottleDevice,
    BlkioWeightDevice,
    ContainerSpec,
    Healthcheck,
    MountSpec,
    PortSpec,
    RestartPolicy,
    TmpfsMount,
    Ulimit,
)
from dockyard.errors import InvalidArgument, NotFound, NotImplementedFeature

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


def lower(project: LoadedProject) -> ProjectPlan:
    """The plan; an error names the file(s) it comes from."""
    try:
        return _lower(project)
    except (InvalidArgument, NotImplementedFeature, NotFound) as exc:
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
    used = {a.network for s in services.values() for a in s.networks}
    networks = {k: n for k, n in networks.items() if n.name in used}
    return ProjectPlan(project.name, project.working_dir, project.config_files, services,
                       networks, volumes, doc)


def _networks(project: LoadedProject) -> dict[str, NetworkPlan]:
    declared: dict[str, Any] = dict(project.doc.get("networks") or {})
    declared.setdefault("default", None)
    out = {}
    for key, item in declared.items():
        item = item or {}
        external = _flag(item.get("external"), f"networks.{key}.external")
        driver = item.get("driver", "bridge")
        if driver != "bridge":
            raise NotImplementedFeature(f"networks.{key}.driver: {driver!r} is not supported "
                                        "(bridge only)")
        name = item.get("name") or (key if external else f"{project.name}_{key}")
        labels = {**as_labels(item.get("labels")), PROJECT: project.name, NETWORK: key}
        configs = (item.get("ipam") or {}).get("config") or []
        if len(configs) > 1:
            raise NotImplementedFeature(f"networks.{key}.ipam.config: one subnet per network "
                                        "(dockyard's bridges are IPv4 with one subnet)")
        subnet = configs[0].get("subnet") if configs else None
        gateway = configs[0].get("gateway") if configs else None
        internal = _flag(item.get("internal"), f"networks.{key}.internal")
        config_hash = _resource_hash([name, driver, internal, labels, subnet, gateway])
        out[key] = NetworkPlan(key, name, internal,
                               {**labels, CONFIG_HASH: config_hash, VERSION: __version__},
                               external, subnet, gateway, config_hash)
    return out


def _volumes(project: LoadedProject) -> dict[str, VolumePlan]:
    out = {}
    for key, item in (project.doc.get("volumes") or {}).items():
        item = item or {}
        external = _flag(item.get("external"), f"volumes.{key}.external")
        if item.get("driver", "local") != "local":
            raise NotImplementedFeature(f"volumes.{key}.driver: only local is supported")
        name = item.get("name") or (key if external else f"{project.name}_{key}")
        options = {str(k): str(v) for k, v in (item.get("driver_opts") or {}).items()}
        labels = {**as_labels(item.get("labels")), PROJECT: project.name, VOLUME: key}
        config_hash = _resource_hash([name, "local", options, labels])
        out[key] = VolumePlan(key, name, options,
                              {**labels, CONFIG_HASH: config_hash, VERSION: __version__},
                              external, config_hash)
    return out


def _flag(value: Any, where: str) -> bool:
    """A boolean key: YAML's, or a string (an interpolated ``${RO:-false}`` is one), read
    as compose-go reads it; ``bool("false")`` would be True."""
    if value is None or isinstance(value, bool | dict):
        return bool(value)  # (a dict: the old ``external: {name: …}``)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on"):
        return True
    if text in ("false", "0", "no", "n", "off"):
        return False
    raise InvalidArgument(f"{where}: {value!r} is not a boolean")


def _resource_hash(config: list[Any]) -> str:
    """A network's or volume's ``com.docker.compose.config-hash``: what it is made
    with (name, driver, options, labels)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def as_labels(value: Any) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in as_mapping(value).items()}


def _depends_on(name: str, service: dict[str, Any],
                services: Mapping[str, Any]) -> dict[str, str]:
    """Its ``depends_on``, and the services its ``network_mode``/``ipc: service:X`` and
    ``volumes_from`` need (started), as Docker Compose adds them."""
    raw = service.get("depends_on") or {}
    deps = {d: {} for d in raw} if isinstance(raw, list) else dict(raw)
    for dep, restart in _implicit(service):
        deps.setdefault(dep, {"restart": restart})
    out = {}
    for dep, options in deps.items():
        if dep not in services and (options or {}).get("required") is False:
            continue  # `required: false`: a dependency that is not there is no error
        if dep not in services:
            raise InvalidArgument(f"service {name!r} depends on undefined service {dep!r}: "
                                  "invalid compose project")
        condition = (options or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            raise InvalidArgument(f"services.{name}.depends_on.{dep}.condition: "
                                  f"{condition!r} is not one of {', '.join(CONDITIONS)}")
        out[dep] = condition
    return out


def implicit_dependencies(service: dict[str, Any], *, restart_only: bool = False) -> list[str]:
    """The services ``network_mode``/``ipc``/``pid: service:X``, ``volumes_from`` and
    ``links`` need; ``restart_only``: those that must follow a restart of theirs."""
    return [dep for dep, restart in _implicit(service) if restart or not restart_only]


def _implicit(service: dict[str, Any]) -> list[tuple[str, bool]]:
    """(service, restart) the way Docker Compose adds them: a shared namespace must
    follow its owner (restart: true), ``volumes_from`` need not."""
    deps = []
    for key in ("network_mode", "ipc", "pid"):
        value = str(service.get(key) or "")
        if value.startswith("service:"):
            deps.append((value.split(":", 1)[1], True))
    for item in service.get("volumes_from") or []:
        text = str(item)
        if not text.startswith("container:"):
            deps.append((text.split(":")[0], False))
    for item in service.get("links") or []:  # legacy: a dependency; names come from DNS
        deps.append((str(item).split(":")[0], True))
    return deps


def _restarts(service: dict[str, Any]) -> set[str]:
    """The dependencies marked ``restart: true`` (the third field of Compose's
    ``depends_on`` label)."""
    raw = service.get("depends_on") or {}
    out = {d for d, o in raw.items() if (o or {}).get("restart")} \
        if isinstance(raw, dict) else set()
    named = set(raw)
    for dep, restart in _implicit(service):
        if restart and dep not in named:
            out.add(dep)
        named.add(dep)
    return out


def container_name(project: str, services: Mapping[str, Any], service: str) -> str:
    """The name of a service's first container: its ``container_name``, else
    ``<project>-<service>-1``."""
    explicit = (services.get(service) or {}).get("container_name")
    return str(explicit) if explicit else f"{project}-{service}-1"


def _service(project: LoadedProject, name: str, service: dict[str, Any],
             networks: dict[str, NetworkPlan], volumes: dict[str, VolumePlan]) -> ServicePlan:
    where = f"services.{name}"
    _platform(service.get("platform"), where)
    for link in service.get("links") or []:
        target, _, alias = str(link).partition(":")
        if alias and alias != target:
            raise NotImplementedFeature(f"{where}.links: the alias {alias!r} of {target} "
                                        "(the service name resolves; use networks.aliases)")
    build = _build(project, name, service, where)
    image = service.get("image") or (build.image if build else None)
    if not image:
        raise InvalidArgument(f"{where}: service has neither an image nor a build context "
                              "specified")
    mounts, tmpfs = _mounts(project, name, service.get("volumes") or [], volumes)
    tmpfs += tuple(_tmpfs(service.get("tmpfs")))
    deploy = service.get("deploy") or {}
    limits = (deploy.get("resources") or {}).get("limits") or {}
    # reservations: memory as Docker Compose passes it (MemoryReservation); cpus, a
    # swarm scheduling hint, Compose passes to no single engine
    reservations = (deploy.get("resources") or {}).get("reservations") or {}
    memory = service.get("mem_limit") or limits.get("memory")
    reserved = service.get("mem_reservation") or reservations.get("memory")
    cpus = service.get("cpus") or limits.get("cpus")
    pids = service.get("pids_limit") or limits.get("pids")
    memswap = service.get("memswap_limit")
    seccomp, nnp = _security_opt(service.get("security_opt") or [], where)
    log_size, log_files = _logging(service.get("logging"), where)
    network_mode = _namespace_mode(project, name, service, "network_mode",
                                   ("none", "host", "bridge"))
    services_doc = project.doc.get("services") or {}
    spec = ContainerSpec(
        image=str(image), name=_opt_str(service.get("container_name")),
        command=_argv(service.get("command")),
        entrypoint=_argv(service.get("entrypoint")),
        env=_environment(project, service),
        working_dir=service.get("working_dir"), user=_opt_str(service.get("user")),
        hostname=service.get("hostname"),
        read_only=_flag(service.get("read_only"), f"{where}.read_only"),
        init=_flag(service.get("init"), f"{where}.init"),
        privileged=_flag(service.get("privileged"), f"{where}.privileged"),
        cap_add=tuple(service.get("cap_add") or ()), cap_drop=tuple(service.get("cap_drop") or ()),
        restart=_restart(service, where),
        tty=_flag(service.get("tty"), f"{where}.tty"),
        stdin_open=_flag(service.get("stdin_open"), f"{where}.stdin_open"),
        memory=parse_bytes(str(memory), f"{where}.mem_limit") if memory else None,
        memory_swap=(-1 if str(memswap) == "-1" else
                     parse_bytes(str(memswap), f"{where}.memswap_limit")) if memswap else None,
        memory_reservation=parse_bytes(str(reserved), f"{where}.mem_reservation")
        if reserved else None,
        nano_cpus=parse_cpus(str(cpus)) if cpus else None,
        cpu_shares=int(service["cpu_shares"]) if service.get("cpu_shares") else None,
        pids_limit=int(pids) if pids else None,
        ulimits=_ulimits(service.get("ulimits")),
        no_new_privileges=nnp, seccomp_profile=seccomp,
        oom_kill_disable=_flag(service.get("oom_kill_disable"), f"{where}.oom_kill_disable"),
        log_max_size=log_size, log_max_file=log_files,
        network_mode=network_mode or "bridge",
        ipc_mode=_namespace_mode(project, name, service, "ipc", ()),
        pid_mode=_namespace_mode(project, name, service, "pid", ("host",)),
        group_add=tuple(str(g) for g in service.get("group_add") or ()),
        devices=_devices(service.get("devices"), where),
        domainname=_opt_str(service.get("domainname")),
        **_blkio(service.get("blkio_config"), where),
        volumes_from=tuple(_volumes_from(project, services_doc, service)),
        dns_search=tuple(_as_list(service.get("dns_search"))),
        dns_options=tuple(_as_list(service.get("dns_opt"))),
        stop_signal=service.get("stop_signal"),
        stop_timeout=_seconds(service.get("stop_grace_period"), f"{where}.stop_grace_period"),
        extra_hosts=_extra_hosts(service.get("extra_hosts")),
        dns=tuple(_as_list(service.get("dns"))),
        healthcheck=_healthcheck(service.get("healthcheck"), where),
        no_healthcheck=_flag((service.get("healthcheck") or {}).get("disable"),
                             f"{where}.healthcheck.disable"),
        mounts=mounts, tmpfs=tmpfs, ports=_ports(service.get("ports") or [], where),
        expose=_expose(service.get("expose") or [], where),
        sysctls=tuple((str(k), _scalar(v)) for k, v in
                      as_mapping(service.get("sysctls")).items()),
        shm_size=parse_bytes(str(service["shm_size"]), f"{where}.shm_size")
        if service.get("shm_size") is not None else None)
    if spec.sysctls:
        from dockyard.engine.ocispec import check_sysctls

        try:
            check_sysctls(spec)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}.sysctls: {exc}") from None
    if network_mode is not None:
        if service.get("networks") is not None:
            raise InvalidArgument(f"{where}: network_mode and networks cannot be combined")
        if spec.ports and (network_mode in ("none", "host") or
                           network_mode.startswith("container:")):
            raise InvalidArgument(f"{where}.ports: cannot be published with network_mode "
                                  f"{service['network_mode']}")
        service_networks: tuple[Attachment, ...] = ()
    else:
        service_networks = _service_networks(name, service, networks)
    depends = _depends_on(name, service, services_doc)
    files = tuple(_files(project, name, service))
    config_hash = _hash(spec, service_networks, build, files)  # hooks do not recreate
    spec = spec._replace(labels={**as_labels(service.get("labels")),
                                 **service_labels(project, name, config_hash, depends,
                                                  _restarts(service))})
    replicas = int(deploy.get("replicas", 1))
    if spec.name and replicas > 1:
        raise InvalidArgument(f"{where}: container_name {spec.name!r} is unique: the service "
                              "cannot have more than one replica")
    policy = str(service.get("pull_policy") or "missing")
    policy = {"if_not_present": "missing"}.get(policy, policy)
    if policy not in ("always", "missing", "never", "build"):
        raise NotImplementedFeature(f"{where}.pull_policy: {policy!r} is not supported "
                                    "(always, missing, never, build)")
    if policy == "build" and build is None:
        raise InvalidArgument(f"{where}.pull_policy: build needs a build section")
    return ServicePlan(name, spec, replicas, depends, service_networks, config_hash, build,
                       files, policy, _hooks(service, "post_start", where),
                       _hooks(service, "pre_stop", where), _watch(name, service, where))


def _watch(name: str, service: dict[str, Any], where: str) -> tuple[WatchRule, ...]:
    out = []
    for index, item in enumerate((service.get("develop") or {}).get("watch") or []):
        at = f"{where}.develop.watch[{index}]"
        action = str(item["action"])
        if action.startswith("sync") and not item.get("target"):
            raise InvalidArgument(f"{at}: action {action} needs a target")
        if action == "rebuild" and not service.get("build"):
            raise InvalidArgument(f"{at}: action rebuild needs a build section")
        hook = _hooks({"exec": [item["exec"]]}, "exec", at)[0] if item.get("exec") else None
        if action == "sync+exec" and hook is None:
            raise InvalidArgument(f"{at}: action sync+exec needs exec")
        out.append(WatchRule(name, action, str(item["path"]), _opt_str(item.get("target")),
                             tuple(_as_list(item.get("ignore"))),
                             tuple(_as_list(item.get("include"))), hook,
                             _flag(item.get("initial_sync"),
                                   f"{at}.initial_sync")))
    return tuple(out)


def _hooks(service: dict[str, Any], key: str, where: str) -> tuple[Hook, ...]:
    out = []
    for index, item in enumerate(service.get(key) or []):
        if item.get("privileged") not in (None, False, "false"):
            raise NotImplementedFeature(f"{where}.{key}[{index}].privileged: a privileged "
                                        "exec is not supported")
        command = _argv(item.get("command"))
        if not command:
            raise InvalidArgument(f"{where}.{key}[{index}].command: a hook needs a command")
        env = tuple(f"{k}={'' if v is None else _scalar(v)}"
                    for k, v in as_mapping(item.get("environment")).items())
        out.append(Hook(command, _opt_str(item.get("user")),
                        _opt_str(item.get("working_dir")), env))
    return tuple(out)


def _hash(spec: ContainerSpec, networks: Any, build: BuildPlan | None,
          files: tuple[FilePlan, ...]) -> str:
    """Compose's ``config-hash``: the service as it will run (replicas excluded, so a
    scale change recreates nothing; a rebuilt image is told by the image label)."""
    shown = [(f.kind, f.name, f.source, hashlib.sha256(f.content).hexdigest()
              if f.content is not None else None, f.target, f.uid, f.gid, f.mode)
             for f in files]
    text = json.dumps([_set_fields(spec), networks, _set_fields(build), shown],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _set_fields(value: Any) -> Any:
    """``value`` for the hash, each record (NamedTuple) as the fields it sets: a field a
    newer dockyard adds, at its default, leaves every service's hash as it was, so an
    upgrade recreates nothing."""
    if isinstance(value, tuple) and hasattr(value, "_field_defaults"):
        record: Any = value
        defaults = record._field_defaults
        return {key: _set_fields(item) for key, item in record._asdict().items()
                if key not in defaults or item != defaults[key]}
    if isinstance(value, tuple | list):
        return [_set_fields(item) for item in value]
    if isinstance(value, dict):
        return {key: _set_fields(item) for key, item in value.items()}
    return value


def _build(project: LoadedProject, name: str, service: dict[str, Any],
           where: str) -> BuildPlan | None:
    raw = service.get("build")
    if raw is None:
        return None
    build = {"context": raw} if isinstance(raw, str) else dict(raw)
    context = str(build.get("context") or project.working_dir)
    if "://" in context or context.startswith("git@"):
        raise NotImplementedFeature(f"{where}.build.context: remote contexts are not "
                                    f"supported ({context})")
    if not sources.is_dir(context):
        raise NotFound(f"{where}.build.context: {context} is not a directory")
    if build.get("dockerfile") and build.get("dockerfile_inline"):
        raise InvalidArgument(f"{where}.build: dockerfile and dockerfile_inline cannot both "
                              "be set")
    args: dict[str, str] = {}
    for key, value in as_mapping(build.get("args")).items():
        if value is None:  # `- NAME`: from the environment, dropped when unset
            if key in project.env:
                args[key] = project.env[key]
            continue
        args[key] = _scalar(value)
    secrets = {}
    for item in build.get("secrets") or []:
        ref = {"source": item} if isinstance(item, str) else dict(item)
        source = str(ref["source"])
        declared = (project.doc.get("secrets") or {}).get(source)
        if declared is None:
            raise InvalidArgument(f"{where}.build.secrets: service {name!r} refers to "
                                  f"undefined secret {source}: invalid compose project")
        if declared.get("file"):
            secrets[str(ref.get("target") or source)] = str(declared["file"])
        else:
            from dockyard.engine.builds import parse_secret

            variable = str(declared.get("environment"))
            if project.env.process_value(variable) is None and variable in project.env:
                raise NotImplementedFeature(f"{where}.build.secrets: {source} comes from "
                                            f"{variable}, which only the .env file sets")
            secrets.update([parse_secret(f"id={ref.get('target') or source},env={variable}")])
    if build.get("ssh"):
        raise NotImplementedFeature(f"{where}.build.ssh: not supported: dockyard's builder "
                                    "has no ssh agent forwarding (RUN --mount=type=ssh)")
    image = str(service.get("image") or f"{project.name}-{name}")
    return BuildPlan(image, context, _opt_str(build.get("dockerfile")),
                     _opt_str(build.get("dockerfile_inline")), args,
                     _opt_str(build.get("target")), as_labels(build.get("labels")),
                     _flag(build.get("no_cache"), f"{where}.build.no_cache"),
                     _flag(build.get("pull"), f"{where}.build.pull"),
                     str(build.get("network") or "default"), secrets,
                     tuple(str(t) for t in build.get("tags") or ()),
                     _contexts(build.get("additional_contexts"), where),
                     *_cache(build, where))


def _contexts(value: Any, where: str) -> dict[str, str]:
    """``additional_contexts``: a directory (made absolute by the loader) or
    ``docker-image://REF``, as the builder's named contexts."""
    given = {str(k): str(v) for k, v in as_mapping(value).items()}
    if not given:
        return {}
    from dockyard.engine.builds import named_contexts

    for path in given.values():
        if "://" not in path:
            sources.is_dir(path)  # (noted: a directory made later changes the project)
    try:
        return named_contexts(given)
    except (NotFound, NotImplementedFeature) as exc:
        raise type(exc)(f"{where}.build.additional_contexts: {exc}") from None


def _cache(build: dict[str, Any], where: str
           ) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    """``cache_from``/``cache_to`` as the builder takes them: an image (``REF`` or
    ``type=registry,ref=REF``) whose inline cache seeds the build, and ``type=inline``
    writing the steps into the built image; any other kind (local, gha, s3, a
    registry cache export) is a note, entry by entry: known and not used (a build's
    result is the same without it)."""
    sources_: list[str] = []
    inline = False
    notes = []
    for key in ("cache_from", "cache_to"):
        for index, entry in enumerate(build.get(key) or []):
            text = str(entry)
            fields = dict(f.partition("=")[::2] for f in text.split(",")) \
                if "=" in text else {"type": "registry", "ref": text}
            if key == "cache_from" and fields.get("type") == "registry" and fields.get("ref"):
                sources_.append(fields["ref"])
            elif key == "cache_to" and fields.get("type") == "inline":
                inline = True
            else:
                notes.append(f"{where}.build.{key}[{index}]: {text!r} not used (dockyard's "
                             "builder takes images with an inline cache, and writes one)")
    return tuple(sources_), inline, tuple(notes)


def _files(project: LoadedProject, name: str, service: dict[str, Any]) -> list[FilePlan]:
    """``secrets`` at /run/secrets/<name> (or target), ``configs`` at /<name> (or
    target); from a file, an environment variable or (configs) inline content."""
    out = []
    for kind in ("secrets", "configs"):
        declared: dict[str, Any] = project.doc.get(kind) or {}
        for index, item in enumerate(service.get(kind) or []):
            ref = {"source": item} if isinstance(item, str) else dict(item)
            source = str(ref["source"])
            where = f"services.{name}.{kind}[{index}]"
            if source not in declared:
                raise InvalidArgument(f"service {name!r} refers to undefined {kind[:-1]} "
                                      f"{source}: invalid compose project ({where})")
            top = declared[source] or {}
            default = f"/run/secrets/{source}" if kind == "secrets" else f"/{source}"
            target = str(ref.get("target") or default)
            if kind == "secrets" and not target.startswith("/"):
                target = f"/run/secrets/{target}"
            uid, gid = _opt_int(ref.get("uid")), _opt_int(ref.get("gid"))
            mode = _mode(ref.get("mode"), where)
            file: str | None = None
            content: bytes | None = None
            if top.get("file"):
                file = str(top["file"])
                if not sources.is_file(file):
                    raise NotFound(f"{kind}.{source}.file: {file}: no such file")
                if uid is not None or gid is not None or mode is not None:
                    content = sources.read_bytes(Path(file))  # a copy that can carry them
                    file = None
            elif top.get("environment"):
                variable = str(top["environment"])
                if variable not in project.env:  # an error only for `up`, `run` (see
                    unset = f"{kind}.{source}.environment: variable {variable} is not set"
                    out.append(FilePlan(kind, source, None, None, target, uid, gid, mode,
                                        unset))  # converge), not for `ps` or `down`
                    continue
                content = project.env[variable].encode()
            elif "content" in top:
                content = str(top["content"]).encode()
            else:
                raise InvalidArgument(f"{kind}.{source}: needs file, environment or content")
            out.append(FilePlan(kind, source, file, content, target, uid, gid, mode))
    return out


def _platform(value: Any, where: str) -> None:
    """``platform``: this host's (``linux/amd64``, ``linux/amd64/v2`` on x86-64) is
    what runs anyway; another would need emulation, which dockyard does not do."""
    if value is None:
        return
    from dockyard.images.imagefile import host_platform

    host = host_platform()
    parts = str(value).split("/")
    if parts[0] != host["os"] or len(parts) < 2 or parts[1] != host["architecture"]:
        raise NotImplementedFeature(f"{where}.platform: {value} is not this host's "
                                    f"({host['os']}/{host['architecture']}): no emulation")


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mode(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise InvalidArgument(f"{where}.mode: {value!r} is not an octal mode") from None


def _restart(service: dict[str, Any], where: str) -> RestartPolicy:
    policy = (service.get("deploy") or {}).get("restart_policy")
    if policy is None or service.get("restart"):
        return parse_restart(str(service.get("restart") or "no"))
    condition = str(policy.get("condition") or "any")
    name = {"none": "no", "any": "always", "on-failure": "on-failure"}.get(condition)
    if name is None:
        raise InvalidArgument(f"{where}.deploy.restart_policy.condition: {condition!r}")
    return restart_policy(name, int(policy.get("max_attempts") or 0)
                          if name == "on-failure" else 0)


def _security_opt(items: list[Any], where: str) -> tuple[str | None, bool]:
    seccomp, nnp = None, False
    for item in items:
        text = str(item)
        key, _, value = text.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges" and value in ("", "true"):
            nnp = True
        elif key == "seccomp" and value:
            seccomp = value
        else:
            raise NotImplementedFeature(f"{where}.security_opt: {text!r} is not supported "
                                        "(no-new-privileges, seccomp=…)")
    return seccomp, nnp


def _logging(value: Any, where: str) -> tuple[int, int]:
    if not value:
        return 0, 1
    driver = value.get("driver") or "json-file"
    if driver not in ("json-file", "local"):
        raise NotImplementedFeature(f"{where}.logging.driver: {driver!r} is not supported "
                                    "(json-file)")
    size, files = 0, 1
    for key, option in (value.get("options") or {}).items():
        if key == "max-size":
            size = parse_bytes(str(option), f"{where}.logging.options.max-size")
        elif key == "max-file":
            files = int(option)
        else:
            raise NotImplementedFeature(f"{where}.logging.options.{key}: not supported "
                                        "(max-size, max-file)")
    return size, files


def _ulimits(value: Any) -> tuple[Ulimit, ...]:
    out = []
    for name, limit in (value or {}).items():
        if isinstance(limit, dict):
            out.append(Ulimit(str(name), int(limit["soft"]), int(limit["hard"])))
        else:
            out.append(Ulimit(str(name), int(limit), int(limit)))
    return tuple(out)


def _namespace_mode(project: LoadedProject, name: str, service: dict[str, Any], key: str,
                    plain: tuple[str, ...]) -> str | None:
    """A namespace to share (``network_mode``, ``ipc``, ``pid``): one of ``plain``
    (``none``, ``host``…), ``container:NAME``, or ``service:X`` (X's first
    container's); None when the key is not set."""
    mode = service.get(key)
    if mode is None:
        return None
    mode = str(mode)
    if mode.startswith("service:"):
        return "container:" + container_name(project.name, project.doc.get("services") or {},
                                             mode.split(":", 1)[1])
    if mode in plain or mode.startswith("container:"):
        return mode
    raise NotImplementedFeature(f"services.{name}.{key}: {mode!r} is not supported "
                                f"({', '.join((*plain, 'service:NAME', 'container:NAME'))})")


def _blkio(value: Any, where: str) -> dict[str, Any]:
    """``blkio_config``: ``weight``, ``weight_device``, ``device_read_bps`` … (a rate as
    a number or a size like ``1mb``, ``device_*_iops`` as a number)."""
    if not value:
        return {}
    out: dict[str, Any] = {}
    if value.get("weight") is not None:
        out["blkio_weight"] = int(value["weight"])
    if value.get("weight_device"):
        out["blkio_weight_device"] = tuple(BlkioWeightDevice(str(d["path"]), int(d["weight"]))
                                           for d in value["weight_device"])
    for key in ("device_read_bps", "device_write_bps", "device_read_iops",
                "device_write_iops"):
        items = value.get(key) or []
        if items:
            out[key] = tuple(BlkioThrottleDevice(str(d["path"]), int(d["rate"]) if isinstance(
                d["rate"], int) or str(d["rate"]).isdigit() or key.endswith("iops")
                else parse_bytes(str(d["rate"]), f"{where}.blkio_config.{key}"))
                for d in items)
    return out


def _devices(value: Any, where: str) -> tuple[str, ...]:
    out = []
    for index, item in enumerate(value or []):
        if isinstance(item, dict):  # the long syntax (CDI) is not this
            raise NotImplementedFeature(f"{where}.devices[{index}]: only HOST[:CONTAINER"
                                        "[:PERMS]] is supported")
        out.append(str(item))
    return tuple(out)


def _volumes_from(project: LoadedProject, services: Mapping[str, Any],
                  service: dict[str, Any]) -> list[str]:
    out = []
    for item in service.get("volumes_from") or []:
        text = str(item)
        if text.startswith("container:"):
            out.append(text.split(":", 1)[1])
            continue
        source, sep, mode = text.partition(":")
        out.append(container_name(project.name, services, source) + (f":{mode}" if sep else ""))
    return out


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
        if not sources.is_file(path) and not item.get("required", True):
            continue
        out += env_file(str(path))
        for name in _bare_names(path):  # a NAME alone takes the environment's value
            project.env.process_value(name)
    for key, value in as_mapping(service.get("environment")).items():
        if value is None:  # `- NAME`: from the environment, dropped when unset there
            if key in project.env:
                out.append(f"{key}={project.env[key]}")
            continue
        out.append(f"{key}={_scalar(value)}")
    return tuple(out)


def _bare_names(path: Path) -> list[str]:
    """The names an env file lists without a value (``engine.flags.env_file`` gives
    them the environment's)."""
    try:
        text = sources.read_text(path, "utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and "=" not in line]


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
    if not value or _flag(value.get("disable"), f"{where}.healthcheck.disable"):
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
                       parse_duration(_opt_str(value.get("interval")), f"{at}.interval", 0.0),
                       parse_duration(_opt_str(value.get("timeout")), f"{at}.timeout", 0.0),
                       int(value.get("retries", 0)),
                       parse_duration(_opt_str(value.get("start_period")), f"{at}.start_period",
                                      0.0),
                       parse_duration(_opt_str(value.get("start_interval")),
                                      f"{at}.start_interval", 0.0))


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


def _expose(items: list[Any], where: str) -> tuple[str, ...]:
    """``expose``: ``PORT``, ``PORT/PROTO``, ``FIRST-LAST[/PROTO]``, one entry per port."""
    out = []
    for item in items:
        text = str(item)
        ports, _, proto = text.partition("/")
        first, _, last = ports.partition("-")
        if not first.isdigit() or (last and not last.isdigit()) or \
                (proto or "tcp") not in ("tcp", "udp"):
            raise InvalidArgument(f"{where}.expose: invalid port {text!r}")
        for port in range(int(first), int(last or first) + 1):
            out.append(f"{port}/{proto or 'tcp'}")
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
        readonly = _flag(long.get("read_only"), f"{where}.read_only")
        if kind == "tmpfs":
            size = (long.get("tmpfs") or {}).get("size")
            tmpfs.append(TmpfsMount(target, f"size={size}" if size else ""))
        elif kind == "bind":
            path = Path(sources.expanduser(source))
            path = path if path.is_absolute() else project.working_dir / path
            create = _flag((long.get("bind") or {}).get("create_host_path", True),
                           f"{where}.bind.create_host_path")
            mounts.append(MountSpec("bind", os.path.normpath(path), target, readonly,
                                    create_host_path=create))
        elif kind == "volume":
            if source and source not in volumes:
                raise InvalidArgument(f"service {service!r} refers to undefined volume "
                                      f"{source}: invalid compose project ({where})")
            name = volumes[source].name if source else ""
            nocopy = _flag((long.get("volume") or {}).get("nocopy"), f"{where}.volume.nocopy")
            mounts.append(MountSpec("volume", name, target, readonly, nocopy=nocopy))
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
    return {"type": kind, "source": source, "target": parts[1], "read_only": "ro" in modes,
            **({"volume": {"nocopy": True}} if kind == "volume" and "nocopy" in modes else {})}


def _service_networks(name: str, service: dict[str, Any],
                      networks: dict[str, NetworkPlan]) -> tuple[Attachment, ...]:
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
        ip = _opt_str((options or {}).get("ipv4_address"))
        if ip and not networks[key].subnet:
            raise InvalidArgument(f"services.{name}.networks.{key}.ipv4_address: the network "
                                  f"{key} has no ipam subnet (a static IP needs one)")
        out.append(Attachment(networks[key].name, (name, *aliases), ip))
    return tuple(out)
