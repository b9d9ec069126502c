"""A ``POST /containers/create`` body lowered into the engine's ``ContainerSpec``.

Pure: no engine, no I/O.  Fields dockyard has no use for are ignored, as dockerd
ignores unknown ones; a field of the wrong JSON type is refused (400) in the words
of Go's JSON decoder, which is what clients of dockerd see.
"""

from __future__ import annotations

from typing import Any

from dockyard.engine.flags import (
    namespace_mode,
    parse_bytes,
    parse_volume,
    pid_mode,
    restart_policy,
    stop_signal,
)
from dockyard.engine.spec import (
    ContainerSpec,
    Healthcheck,
    MountSpec,
    PortSpec,
    TmpfsMount,
    Ulimit,
)
from dockyard.errors import InvalidArgument

_GO_TYPES = {str: "string", bool: "bool", int: "int64", list: "array", dict: "object"}


class Fields:
    """One JSON object of the body, read with its type checked."""

    def __init__(self, data: Any, where: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidArgument(f"json: cannot unmarshal {_json_type(data)} into Go value "
                                  f"of type {where}")
        self.data = data
        self.where = where

    def _typed(self, key: str, kind: type) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise InvalidArgument(f"json: cannot unmarshal {_json_type(value)} into Go struct "
                                  f"field {self.where}.{key} of type {_GO_TYPES[kind]}")
        return value

    def text(self, key: str) -> str | None:
        result: str | None = self._typed(key, str)
        return result

    def boolean(self, key: str) -> bool:
        return bool(self._typed(key, bool))

    def integer(self, key: str) -> int | None:
        value = self._typed(key, int)
        return None if value is None else int(value)

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings (or null)."""
        value = self._typed(key, list) or []
        if not all(isinstance(item, str) for item in value):
            raise InvalidArgument(f"json: cannot unmarshal non-string into Go struct field "
                                  f"{self.where}.{key} of type []string")
        return tuple(value)

    def command(self, key: str) -> tuple[str, ...] | None:
        """Cmd and Entrypoint: a list, a single string, or null (the image's)."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        return self.strings(key)

    def object(self, key: str) -> Fields:
        return Fields(self.data.get(key), f"{self.where}.{key}")

    def mapping(self, key: str) -> dict[str, str]:
        value = self._typed(key, dict) or {}
        if not all(isinstance(v, str) for v in value.values()):
            raise InvalidArgument(f"json: cannot unmarshal non-string into Go struct field "
                                  f"{self.where}.{key} of type map[string]string")
        return dict(value)

    def objects(self, key: str) -> list[Fields]:
        return [Fields(item, f"{self.where}.{key}") for item in self._typed(key, list) or []]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) \
        else "null"


def _ports(host: Fields) -> tuple[PortSpec, ...]:
    bindings = host._typed("PortBindings", dict) or {}
    specs = []
    for key, entries in bindings.items():
        number, _, proto = str(key).partition("/")
        if not number.isdigit() or proto not in ("", "tcp", "udp"):
            raise InvalidArgument(f"invalid port specification: {key!r}")
        for entry in Fields({"B": entries}, "HostConfig.PortBindings").objects("B"):
            host_port = entry.text("HostPort") or "0"
            if not host_port.isdigit() or int(host_port) > 65535:
                raise InvalidArgument(f"invalid host port {host_port!r} for {key}")
            specs.append(PortSpec(entry.text("HostIp") or "", int(host_port), int(number),
                                  proto or "tcp"))
    return tuple(specs)


def _mount(item: Fields) -> MountSpec:
    kind = item.text("Type") or "volume"
    if kind not in ("volume", "bind", "tmpfs"):
        raise InvalidArgument(f"mount type {kind!r} is not supported (volume, bind, tmpfs)")
    target = item.text("Target") or ""
    if not target:
        raise InvalidArgument("invalid mount config: Target must not be empty")
    source = item.text("Source") or ""
    if kind == "bind" and not source.startswith("/"):
        raise InvalidArgument(f'invalid mount config for type "bind": invalid mount path: '
                              f"'{source}' mount path must be absolute")
    options = []
    tmpfs = item.object("TmpfsOptions")
    if tmpfs.integer("SizeBytes"):
        options.append(f"size={tmpfs.integer('SizeBytes')}")
    if tmpfs.integer("Mode"):
        options.append(f"mode={tmpfs.integer('Mode'):o}")
    nocopy = kind == "volume" and item.object("VolumeOptions").boolean("NoCopy")
    return MountSpec(kind, source, target, item.boolean("ReadOnly"), ",".join(options),
                     nocopy=nocopy)


def _healthcheck(config: Fields) -> Healthcheck | None:
    """The body's ``Healthcheck``; unset fields (no ``Test`` among them) are the
    image's, merged by the engine as dockerd merges them."""
    check = config.object("Healthcheck")
    test = check.strings("Test")
    seconds = {key: (check.integer(key) or 0) / 1e9 for key in
               ("Interval", "Timeout", "StartPeriod", "StartInterval")}
    retries = check.integer("Retries") or 0
    if not test and not retries and not any(seconds.values()):
        return None
    return Healthcheck(test, seconds["Interval"], seconds["Timeout"], retries,
                       seconds["StartPeriod"], seconds["StartInterval"])


def _security(host: Fields) -> tuple[bool, str | None]:
    nnp, seccomp = False, None
    for opt in host.strings("SecurityOpt"):
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges" and value in ("", "true"):
            nnp = True
        elif key == "seccomp":
            seccomp = value
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return nnp, seccomp


def _log_config(host: Fields) -> tuple[int, int]:
    log = host.object("LogConfig")
    if (log.text("Type") or "json-file") != "json-file":
        raise InvalidArgument(f"log driver {log.text('Type')!r} is not supported (json-file)")
    options = log.mapping("Config")
    size, count = 0, 1
    if options.get("max-size"):
        size = parse_bytes(options["max-size"], "max-size")
    if options.get("max-file"):
        if not options["max-file"].isdigit():
            raise InvalidArgument(f"invalid max-file {options['max-file']!r}")
        count = int(options["max-file"])
    return size, count


def _network(host: Fields, body: Fields) -> tuple[str, tuple[str, ...], str | None]:
    mode = host.text("NetworkMode") or "bridge"
    mode = "bridge" if mode == "default" else mode
    endpoints = body.object("NetworkingConfig").object("EndpointsConfig")
    aliases: tuple[str, ...] = ()
    address = None
    for name in endpoints.data:
        if name == mode:
            endpoint = endpoints.object(name)
            aliases = endpoint.strings("Aliases")
            address = endpoint.object("IPAMConfig").text("IPv4Address") or None
    return mode, aliases, address


def _positive(value: int | None) -> int | None:
    return value if value else None


# Docker's HostConfig fields dockyard does not act on: still refused when of the wrong
# JSON type, as dockerd's decoder refuses them
_OTHER_HOST_FIELDS = {
    "integer": ("CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime",
                "MemorySwappiness", "KernelMemory", "CpuCount",
                "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth", "BlkioWeight"),
    "text": ("CgroupParent", "CpusetCpus", "CpusetMems", "Cgroup", "CgroupnsMode",
             "UTSMode", "UsernsMode", "Runtime", "Isolation", "ContainerIDFile",
             "VolumeDriver"),
    "strings": ("Links", "MaskedPaths", "ReadonlyPaths", "DeviceCgroupRules"),
    "objects": ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "DeviceRequests"),
    "mapping": ("StorageOpt", "Annotations"),
}


def _check_other_fields(host: Fields) -> None:
    for kind, keys in _OTHER_HOST_FIELDS.items():
        for key in keys:
            getattr(host, kind)(key)


def spec_from_body(body: Any, name: str | None) -> ContainerSpec:
    config = Fields(body, "container.Config")
    host = config.object("HostConfig")
    _check_other_fields(host)
    image = config.text("Image")
    if not image:
        raise InvalidArgument("config cannot be empty in order to create a container: "
                              "no Image given")
    entrypoint = config.command("Entrypoint")
    if entrypoint is not None and list(entrypoint) in ([], [""]):
        entrypoint = ()  # --entrypoint "": the image's is cleared
    restart = host.object("RestartPolicy")
    policy = restart_policy(restart.text("Name") or "no", restart.integer("MaximumRetryCount") or 0)
    if policy.name != "no" and host.boolean("AutoRemove"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    network, aliases, address = _network(host, config)
    nnp, seccomp = _security(host)
    log_size, log_files = _log_config(host)
    pids = host.integer("PidsLimit")
    return ContainerSpec(
        image=image, name=name or None, command=config.command("Cmd"), entrypoint=entrypoint,
        env=config.strings("Env"), working_dir=config.text("WorkingDir") or None,
        user=config.text("User") or None, hostname=config.text("Hostname") or None,
        labels=config.mapping("Labels"), tty=config.boolean("Tty"),
        stdin_open=config.boolean("OpenStdin"), read_only=host.boolean("ReadonlyRootfs"),
        tmpfs=tuple(TmpfsMount(k, v) for k, v in host.mapping("Tmpfs").items()),
        init=host.boolean("Init"), stop_signal=stop_signal(config.text("StopSignal")),
        stop_timeout=config.integer("StopTimeout"), restart=policy,
        auto_remove=host.boolean("AutoRemove"), memory=_positive(host.integer("Memory")),
        memory_swap=_positive(host.integer("MemorySwap")),
        memory_reservation=_positive(host.integer("MemoryReservation")),
        nano_cpus=_positive(host.integer("NanoCpus")),
        cpu_shares=_positive(host.integer("CpuShares")),
        pids_limit=pids if pids and pids > 0 else None,
        ulimits=tuple(Ulimit(u.text("Name") or "", u.integer("Soft") or 0, u.integer("Hard") or 0)
                      for u in host.objects("Ulimits")),
        cap_add=host.strings("CapAdd"), cap_drop=host.strings("CapDrop"),
        privileged=host.boolean("Privileged"), no_new_privileges=nnp, seccomp_profile=seccomp,
        oom_kill_disable=host.boolean("OomKillDisable"), network_mode=network,
        network_aliases=aliases, ip_address=address, dns=host.strings("Dns"),
        dns_search=host.strings("DnsSearch"), dns_options=host.strings("DnsOptions"),
        extra_hosts=host.strings("ExtraHosts"), healthcheck=_healthcheck(config),
        log_max_size=log_size, log_max_file=log_files,
        mounts=tuple(parse_volume(b) for b in host.strings("Binds")) +
        tuple(_mount(m) for m in host.objects("Mounts")),
        volumes_from=host.strings("VolumesFrom"), ports=_ports(host),
        publish_all=host.boolean("PublishAllPorts"),
        shm_size=_positive(host.integer("ShmSize")),
        sysctls=tuple(sorted(host.mapping("Sysctls").items())),
        group_add=host.strings("GroupAdd"), devices=_devices(host),
        pid_mode=pid_mode(host.text("PidMode")), ipc_mode=namespace_mode(host.text("IpcMode")),
        domainname=config.text("Domainname") or None,
        expose=tuple(sorted(config._typed("ExposedPorts", dict) or {})))


def _devices(host: Fields) -> tuple[str, ...]:
    """Docker's DeviceMapping objects as ``--device``'s ``HOST:CONTAINER:PERMS``."""
    devices = []
    for item in host.objects("Devices"):
        on_host = item.text("PathOnHost") or ""
        if not on_host:
            raise InvalidArgument("invalid device mapping: PathOnHost is empty")
        devices.append(f"{on_host}:{item.text('PathInContainer') or on_host}:"
                       f"{item.text('CgroupPermissions') or 'rwm'}")
    return tuple(devices)
