"""What ``run`` and ``create`` read from their flags: the flag table (defined once,
for click and the fast path: ``cli.flagtable``) and the ``ContainerSpec`` it makes.

No click here: the fast path (``cli.fast``) runs ``run`` with this module alone.
"""

from __future__ import annotations

import os
from typing import Any

from dockyard.cli import blkio
from dockyard.cli.flagtable import Opt, opt
from dockyard.engine.flags import (
    env_file,
    go_bool,
    namespace_mode,
    parse_bytes,
    parse_cpus,
    parse_duration,
    parse_publish,
    parse_restart,
    parse_ulimit,
    parse_volume,
    pid_mode,
)
from dockyard.engine.flags import stop_signal as _stop_signal
from dockyard.engine.spec import (
    ContainerSpec,
    Healthcheck,
    MountSpec,
    TmpfsMount,
)
from dockyard.errors import InvalidArgument

CONTAINER_OPTIONS: tuple[Opt, ...] = (
    opt("--name"), opt("-e", "--env", kind="multi"),
    opt("--env-file", kind="multi"), opt("-w", "--workdir"),
    opt("-u", "--user"), opt("--entrypoint"),
    opt("-h", "--hostname"), opt("-l", "--label", kind="multi"),
    opt("-t", "--tty", kind="flag"), opt("-i", "--interactive", kind="flag"),
    opt("--read-only", kind="flag"), opt("--tmpfs", kind="multi"),
    opt("--init", kind="flag"), opt("--stop-signal"),
    opt("--stop-timeout", type=int), opt("--restart", default="no"),
    opt("--rm", kind="flag"), opt("-m", "--memory"),
    opt("--memory-swap"), opt("--memory-reservation"), opt("--cpus"),
    opt("--cpu-shares", type=int), opt("--pids-limit", type=int),
    *blkio.OPTIONS,
    opt("--ulimit", kind="multi"), opt("--cap-add", kind="multi"),
    opt("--cap-drop", kind="multi"), opt("--security-opt", kind="multi"),
    opt("--privileged", kind="flag"), opt("--oom-kill-disable", kind="flag"),
    opt("--network", "--net", dest="network", default="bridge",
        help="bridge (default), none, host, container:NAME or a network's name"),
    opt("--network-alias", "--net-alias", dest="network_alias", kind="multi"),
    opt("--ip", help="This address on a user-defined network."),
    opt("--dns", kind="multi"), opt("--dns-search", kind="multi"),
    opt("--dns-option", "--dns-opt", dest="dns_option", kind="multi"),
    opt("--add-host", kind="multi", help="NAME:IP in /etc/hosts"),
    opt("--log-opt", kind="multi", help="max-size=10m, max-file=3"),
    opt("-v", "--volume", kind="multi", help="NAME:/path[:ro], /host:/path[:ro]"),
    opt("--mount", kind="multi", help="type=volume|bind|tmpfs,source=,target="),
    opt("--volumes-from", kind="multi"),
    opt("-p", "--publish", kind="multi",
        help="[IP:][HOST:]CONTAINER[/tcp|udp], ranges as 8000-8002"),
    opt("-P", "--publish-all", kind="flag",
        help="Publish the image's exposed ports to random host ports."),
    opt("--health-cmd"), opt("--health-interval"),
    opt("--health-timeout"), opt("--health-retries", type=int),
    opt("--health-start-period"), opt("--health-start-interval"),
    opt("--no-healthcheck", kind="flag"),
    opt("--shm-size", help="Size of /dev/shm (64m by default)."),
    opt("--sysctl", kind="multi", help="KEY=VALUE of the container's own namespaces."),
    opt("--group-add", kind="multi", help="More groups of the process (names or gids)."),
    opt("--device", kind="multi", help="HOST[:CONTAINER[:PERMS]], a host device node."),
    opt("--pid", help="host, or container:NAME to share its PID namespace."),
    opt("--ipc", help="container:NAME to share its IPC namespace (private by default)."),
    opt("--domainname"), opt("--expose", kind="multi", help="PORT[/PROTO] to expose."),
)
RUN_OPTIONS: tuple[Opt, ...] = (
    *CONTAINER_OPTIONS,
    opt("-d", "--detach", kind="flag", help="Run in the background, print the ID."),
    opt("--pull", default="missing",
        help="Pull the image first: missing (default), always or never."),
)


def parse_mount(text: str) -> MountSpec:
    """``--mount type=volume|bind|tmpfs,source=…,target=…,readonly,volume-nocopy,
    tmpfs-size=…``."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        fields[key.strip()] = value if sep else "true"
    kind = fields.get("type", "volume")
    if kind not in ("volume", "bind", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {kind!r}")
    target = fields.get("target") or fields.get("destination") or fields.get("dst") or ""
    if not target:
        raise InvalidArgument(f"invalid mount config: target is required: {text!r}")
    source = fields.get("source") or fields.get("src") or ""
    readonly = go_bool(fields.get("readonly", fields.get("ro", "false")), "readonly")
    if kind == "bind":
        if not source:
            raise InvalidArgument('invalid mount config for type "bind": field Source must '
                                  "not be empty")
        source = os.path.abspath(source)
    options = []
    if "tmpfs-size" in fields:
        options.append(f"size={parse_bytes(fields['tmpfs-size'], 'tmpfs-size')}")
    if "tmpfs-mode" in fields:
        options.append(f"mode={fields['tmpfs-mode']}")
    nocopy = kind == "volume" and go_bool(fields.get("volume-nocopy", "false"), "volume-nocopy")
    return MountSpec(kind, source, target, readonly, ",".join(options), nocopy=nocopy)


def _env(env: tuple[str, ...], env_files: tuple[str, ...]) -> tuple[str, ...]:
    result: list[str] = []
    for path in env_files:
        result += env_file(path)
    for item in env:
        if "=" not in item and item in os.environ:
            item = f"{item}={os.environ[item]}"
        result.append(item)
    return tuple(result)


def _labels(labels: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in labels:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def spec_from_flags(image: str, command: tuple[str, ...], o: dict[str, Any]) -> ContainerSpec:
    seccomp, nnp = None, False
    for security in o["security_opt"]:
        key, _, value = security.partition("=")
        if security in ("no-new-privileges", "no-new-privileges=true",
                        "no-new-privileges:true"):
            nnp = True
        elif key == "seccomp":
            seccomp = value
        else:
            raise InvalidArgument(f"invalid --security-opt: {security!r}")
    log_max_size, log_max_file = 0, 1
    for log_opt in o["log_opt"]:
        key, _, value = log_opt.partition("=")
        if key == "max-size":
            log_max_size = parse_bytes(value, "--log-opt max-size")
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(f"invalid value for --log-opt max-file: {value!r} (a "
                                      "count of at least 1)")
            log_max_file = int(value)
        else:
            raise InvalidArgument(f"unknown log opt {key!r} for the json-file log driver")
    if o["rm"] and o["restart"] not in ("", "no"):  # the docker CLI's refusal
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    network = o["network"]
    if (o["publish"] or o["publish_all"]) and (network in ("none", "host") or
                                               network.startswith("container:")):
        raise InvalidArgument(f"-p cannot be used with --network {network}: it has no "
                              "network of its own to publish from")
    if network.startswith("container:") and o["hostname"]:
        raise InvalidArgument("conflicting options: hostname and the network mode "
                              f"{network}")
    if o["ip"] and (network in ("bridge", "host", "none") or network.startswith("container:")):
        raise InvalidArgument("user specified IP address is supported on user defined networks "
                              "only")
    return ContainerSpec(
        image=image, name=o["name"], command=command or None,
        entrypoint=(tuple(o["entrypoint"].split()) if o["entrypoint"] else ())
        if o["entrypoint"] is not None else None,
        env=_env(o["env"], o["env_file"]), working_dir=o["workdir"], user=o["user"],
        hostname=o["hostname"], labels=_labels(o["label"]), tty=o["tty"],
        read_only=o["read_only"], stdin_open=o["interactive"],
        log_max_size=log_max_size, log_max_file=log_max_file,
        tmpfs=tuple(TmpfsMount(*t.split(":", 1)) for t in o["tmpfs"]),
        init=o["init"], stop_signal=_stop_signal(o["stop_signal"]),
        stop_timeout=o["stop_timeout"],
        restart=parse_restart(o["restart"]), auto_remove=o["rm"],
        memory=parse_bytes(o["memory"], "--memory") if o["memory"] else None,
        memory_swap=parse_bytes(o["memory_swap"], "--memory-swap") if o["memory_swap"]
        else None,
        memory_reservation=parse_bytes(o["memory_reservation"], "--memory-reservation")
        if o["memory_reservation"] else None,
        nano_cpus=parse_cpus(o["cpus"]) if o["cpus"] else None,
        cpu_shares=o["cpu_shares"], pids_limit=o["pids_limit"],
        ulimits=tuple(parse_ulimit(u) for u in o["ulimit"]),
        cap_add=o["cap_add"], cap_drop=o["cap_drop"], privileged=o["privileged"],
        no_new_privileges=nnp, seccomp_profile=seccomp,
        oom_kill_disable=o["oom_kill_disable"], network_mode=network,
        network_aliases=tuple(o["network_alias"]), ip_address=o["ip"],
        dns=tuple(o["dns"]), dns_search=tuple(o["dns_search"]),
        dns_options=tuple(o["dns_option"]), extra_hosts=tuple(o["add_host"]),
        healthcheck=_healthcheck(o), no_healthcheck=o["no_healthcheck"],
        mounts=tuple(parse_volume(v) for v in o["volume"]) +
        tuple(parse_mount(m) for m in o["mount"]),
        volumes_from=tuple(o["volumes_from"]),
        ports=tuple(p for text in o["publish"] for p in parse_publish(text)),
        publish_all=o["publish_all"],
        shm_size=parse_bytes(o["shm_size"], "--shm-size") if o["shm_size"] else None,
        sysctls=tuple(_sysctl(item) for item in o["sysctl"]),
        group_add=tuple(o["group_add"]), devices=tuple(o["device"]),
        pid_mode=pid_mode(o["pid"]), ipc_mode=namespace_mode(o["ipc"]),
        domainname=o["domainname"] or None,
        expose=tuple(p if "/" in p else f"{p}/tcp" for p in o["expose"]),
        **blkio.spec_fields(o))


def _sysctl(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidArgument(f"invalid --sysctl {item!r}: want KEY=VALUE")
    return key, value


def _healthcheck(o: dict[str, Any]) -> Healthcheck | None:
    """Any ``--health-*`` flag makes the container's own check; an unset field (no
    ``--health-cmd`` among them) is the image's, as ``docker run`` leaves it to
    dockerd's merge (``engine.spec.merged_healthcheck``)."""
    seconds = {name: parse_duration(o[f"health_{name}"], f"--health-{name.replace('_', '-')}",
                                    0.0)
               for name in ("interval", "timeout", "start_period", "start_interval")}
    if not o["health_cmd"] and not o["health_retries"] and not any(seconds.values()):
        return None
    if o["no_healthcheck"]:
        raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
    return Healthcheck(("CMD-SHELL", o["health_cmd"]) if o["health_cmd"] else (),
                       retries=o["health_retries"] or 0, **seconds)
