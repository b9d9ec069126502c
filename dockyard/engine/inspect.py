"""Docker's ``container inspect`` JSON shape, built from a record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.records import ContainerRecord
from dockyard.engine.spec import ContainerSpec, merged_healthcheck

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService


def _image_config(record: ContainerRecord, images: ImageService) -> dict[str, Any]:
    return images.container_config(record.image_id)


def _network_settings(record: ContainerRecord, bundle: Path) -> dict[str, Any]:
    """Docker's NetworkSettings: the first network's address at the top level (as for
    the default bridge), every network under Networks, ports with their protocol."""
    import json

    settings: dict[str, Any] = {"Networks": {}, "Ports": {}, "IPAddress": "", "Gateway": "",
                                "IPPrefixLen": 0, "MacAddress": ""}
    try:
        config = json.loads((bundle / "network.json").read_text())
    except (OSError, ValueError):
        return settings
    endpoints = config.get("endpoints", [])
    if endpoints:
        first = endpoints[0]
        settings.update(IPAddress=first["address"], Gateway=first["gateway"],
                        IPPrefixLen=first["prefix"])
    for endpoint in endpoints:
        settings["Networks"][endpoint["network"]] = {
            "NetworkID": endpoint["network_id"], "IPAddress": endpoint["address"],
            "IPPrefixLen": endpoint["prefix"], "Gateway": endpoint["gateway"],
            "Aliases": endpoint.get("aliases") or None,
            "DNSNames": [record.name, record.id[:12], *endpoint.get("aliases", [])]
            if endpoint.get("dns") else None}
    for host_ip, host_port, container_port, proto in config.get("ports", []):
        settings["Ports"].setdefault(f"{container_port}/{proto}", []).append(
            {"HostIp": host_ip or "0.0.0.0", "HostPort": str(host_port)})
    return settings


def health_of(bundle: Path) -> dict[str, Any] | None:
    import json

    try:
        status = json.loads((bundle / "status.json").read_text())
    except (OSError, ValueError):
        return None
    health = status.get("health")
    return health if isinstance(health, dict) else None


def process_args(record: ContainerRecord, config: dict[str, Any]) -> list[str]:
    """The container's command line (Path and Args) from its image's ``config``."""
    from dockyard.engine import ocispec

    try:
        return ocispec.process_args(config, record.spec)
    except Exception:  # noqa: BLE001 - an image with no command: show what there is
        return []


def command_of(record: ContainerRecord, images: ImageService) -> list[str]:
    """``process_args`` alone, for ``ps``'s COMMAND column without a whole inspect."""
    return process_args(record, _image_config(record, images))


def container_json(record: ContainerRecord, bundle: Path,
                   images: ImageService) -> dict[str, Any]:
    from dockyard.engine import ocispec

    spec = record.spec
    config = _image_config(record, images)
    args = process_args(record, config)
    env = ocispec.merge_env(list(config.get("Env") or []), spec.env)
    running = record.state == "running"
    state: dict[str, Any] = {}
    health = health_of(bundle)
    if health is not None:
        state["Health"] = health
    exposed = {**(config.get("ExposedPorts") or {}), **{port: {} for port in spec.expose},
               **{f"{p.container_port}/{p.protocol}": {} for p in spec.ports}}
    doc: dict[str, Any] = {
        "Id": record.id,
        "Created": record.created,
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": record.state, "Running": running or record.state == "paused",
            "Paused": record.state == "paused", "Restarting": False,
            "OOMKilled": record.oom_killed, "Dead": record.state == "dead",
            "Pid": record.pid if running else 0, "ExitCode": record.exit_code,
            "Error": record.error, "StartedAt": record.started_at or "0001-01-01T00:00:00Z",
            "FinishedAt": record.finished_at or "0001-01-01T00:00:00Z",
            **state,
        },
        "Image": record.image_id,
        "ResolvConfPath": str(bundle / "resolv.conf"), "HostnamePath": str(bundle / "hostname"),
        "HostsPath": str(bundle / "hosts"),
        "LogPath": str(bundle / "container.log"),
        "Name": f"/{record.name}",
        "RestartCount": record.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "AutoRemove": spec.auto_remove, "Privileged": spec.privileged,
            "ReadonlyRootfs": spec.read_only, "Memory": spec.memory or 0,
            "MemorySwap": spec.memory_swap or 0,
            "MemoryReservation": spec.memory_reservation or 0,
            "NanoCpus": spec.nano_cpus or 0,
            "CpuShares": spec.cpu_shares or 0, "PidsLimit": spec.pids_limit,
            "CapAdd": list(spec.cap_add) or None, "CapDrop": list(spec.cap_drop) or None,
            "RestartPolicy": {"Name": spec.restart.name,
                              "MaximumRetryCount": spec.restart.maximum_retry_count},
            "NetworkMode": spec.network_mode, "Init": spec.init,
            "Dns": list(spec.dns), "DnsSearch": list(spec.dns_search),
            "DnsOptions": list(spec.dns_options), "ExtraHosts": list(spec.extra_hosts) or None,
            "OomKillDisable": spec.oom_kill_disable,
            "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits],
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "Config": {
            "Hostname": spec.hostname or record.id[:12],
            "User": spec.user or config.get("User", ""),
            "Tty": spec.tty, "OpenStdin": spec.stdin_open,
            "Env": env, "Cmd": list(spec.command) if spec.command is not None
            else config.get("Cmd"),
            "Image": record.image,
            "WorkingDir": spec.working_dir or config.get("WorkingDir", ""),
            "Entrypoint": list(spec.entrypoint) if spec.entrypoint is not None
            else config.get("Entrypoint"),
            "Labels": dict(spec.labels),
            "StopSignal": spec.stop_signal or config.get("StopSignal"),
            "StopTimeout": spec.stop_timeout,
        },
        "Mounts": [{"Type": m.type, "Name": m.source if m.type == "volume" else None,
                    "Source": m.source, "Destination": m.target, "RW": not m.readonly}
                   for m in spec.mounts],
        "NetworkSettings": _network_settings(record, bundle),
    }
    if exposed:  # Docker leaves the key out when there are none
        doc["Config"]["ExposedPorts"] = exposed
    check = _healthcheck(spec, config)
    if check is not None:
        doc["Config"]["Healthcheck"] = check
    return doc


def _healthcheck(spec: ContainerSpec, config: dict[str, Any]) -> dict[str, Any] | None:
    """``Config.Healthcheck`` as Docker shows it: the container's own merged with the
    image's (as dockerd stores it at create), durations in nanoseconds, unset ones
    left out; ``--no-healthcheck`` is NONE."""
    if spec.no_healthcheck:
        return {"Test": ["NONE"]}
    check = merged_healthcheck(spec.healthcheck, config.get("Healthcheck"))
    if check is None:
        return None
    doc: dict[str, Any] = {"Test": list(check.test)} if check.test else {}
    for key, seconds in (("Interval", check.interval), ("Timeout", check.timeout),
                         ("StartPeriod", check.start_period),
                         ("StartInterval", check.start_interval)):
        if seconds:
            doc[key] = round(seconds * 1e9)
    if check.retries:
        doc["Retries"] = check.retries
    return doc
