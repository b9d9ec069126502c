"""Container commands: create, run, start, stop, kill, rm, ps, logs, wait, inspect."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click

from dockyard import trace
from dockyard.cli import blkio
from dockyard.engine.engine import Engine
from dockyard.engine.flags import parse_bytes, parse_restart, parse_volume
from dockyard.engine.flags import stop_signal as _stop_signal
from dockyard.engine.spec import (
    ContainerSpec,
    Healthcheck,
    MountSpec,
    PortSpec,
    TmpfsMount,
    Ulimit,
)
from dockyard.errors import ContainerNotFound, InvalidArgument


def parse_cpus(text: str) -> int:
    """``--cpus`` as nano-CPUs (the range is the engine's to check)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                              f"{text} as a rational number")
    return round(value * 1e9)


def parse_ulimit(text: str) -> Ulimit:
    name, _, values = text.partition("=")
    soft, _, hard = values.partition(":")
    if not name or not soft.lstrip("-").isdigit() or (hard and not hard.lstrip("-").isdigit()):
        raise InvalidArgument(f"invalid ulimit {text!r}: want name=soft[:hard]")
    return Ulimit(name, int(soft), int(hard or soft))


def parse_mount(text: str) -> MountSpec:
    """``--mount type=volume|bind|tmpfs,source=…,target=…,readonly,tmpfs-size=…``."""
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
    readonly = fields.get("readonly", fields.get("ro", "false")) in ("true", "1")
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
    return MountSpec(kind, source, target, readonly, ",".join(options))


def _env_file(path: str) -> list[str]:
    """The docker CLI's env file: ``NAME=value`` (the value kept as it is), ``NAME``
    (its value from this environment), ``#`` comments and blank lines."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "invalid utf8 bytes"
        raise InvalidArgument(f"open {path}: {str(reason).lower()}") from None
    result = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, has_value, value = line.partition("=")
        if not name:
            raise InvalidArgument(f"no variable name on line '{line}'")
        if any(c.isspace() for c in name):
            raise InvalidArgument(f"poorly formatted environment: variable '{name}' contains "
                                  "whitespaces")
        if has_value:
            result.append(f"{name}={value}")
        else:
            result.append(f"{name}={os.environ[name]}" if name in os.environ else name)
    return result


def _env(env: tuple[str, ...], env_files: tuple[str, ...]) -> tuple[str, ...]:
    result: list[str] = []
    for path in env_files:
        result += _env_file(path)
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
    for opt in o["security_opt"]:
        key, _, value = opt.partition("=")
        if opt in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
            nnp = True
        elif key == "seccomp":
            seccomp = value
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    log_max_size, log_max_file = 0, 1
    for opt in o["log_opt"]:
        key, _, value = opt.partition("=")
        if key == "max-size":
            log_max_size = parse_bytes(value, "--log-opt max-size")
        elif key == "max-file":
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
        publish_all=o["publish_all"], **blkio.spec_fields(o))


def _port_range(text: str, spec: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise InvalidArgument(f"invalid publish specification: {spec!r}") from None
    if not (0 <= first <= last <= 65535):
        raise InvalidArgument(f"invalid port range in {spec!r}")
    return first, last


def parse_publish(text: str) -> list[PortSpec]:
    """``-p [IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/tcp|/udp]`` (ranges pair up)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"-p {text}: protocol must be tcp or udp")
    parts = spec.rsplit(":", 2)
    host_ip, host_text = ("", "") if len(parts) == 1 else (
        ("", parts[0]) if len(parts) == 2 else (parts[0], parts[1]))
    first, last = _port_range(parts[-1], text)
    if host_text:
        host_first, host_last = _port_range(host_text, text)
        if host_last - host_first not in (0, last - first) or (
                host_last != host_first and last == first):
            raise InvalidArgument(f"invalid ranges in {text!r}: host and container ranges "
                                  "must be the same size")
    else:
        host_first = host_last = 0
    specs = []
    for offset, port in enumerate(range(first, last + 1)):
        host_port = host_first + offset if host_last > host_first else host_first
        specs.append(PortSpec(host_ip, host_port, port, proto))
    return specs


def parse_duration(text: str | None, flag: str, default: float) -> float:
    """Go-style durations as Docker takes them: 30s, 1m30s, 500ms, 2h."""
    if not text:
        return default
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text):
        number = match.group(0)
        total += float(match.group(1)) * units[match.group(2)]
    if not number or re.sub(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", "", text):
        raise InvalidArgument(f"invalid duration {text!r} for {flag}")
    return total


def _healthcheck(o: dict[str, Any]) -> Healthcheck | None:
    if not o["health_cmd"]:
        return None
    return Healthcheck(("CMD-SHELL", o["health_cmd"]),
                       parse_duration(o["health_interval"], "--health-interval", 30.0),
                       parse_duration(o["health_timeout"], "--health-timeout", 30.0),
                       o["health_retries"] or 3,
                       parse_duration(o["health_start_period"], "--health-start-period", 0.0))


def container_options(func: Any) -> Any:
    options = [
        click.option("--name"), click.option("-e", "--env", multiple=True),
        click.option("--env-file", multiple=True), click.option("-w", "--workdir"),
        click.option("-u", "--user"), click.option("--entrypoint", default=None),
        click.option("-h", "--hostname"), click.option("-l", "--label", multiple=True),
        click.option("-t", "--tty", is_flag=True), click.option("-i", "--interactive",
                                                                 is_flag=True),
        click.option("--read-only", is_flag=True), click.option("--tmpfs", multiple=True),
        click.option("--init", is_flag=True), click.option("--stop-signal"),
        click.option("--stop-timeout", type=int), click.option("--restart", default="no"),
        click.option("--rm", is_flag=True), click.option("-m", "--memory"),
        click.option("--memory-swap"), click.option("--cpus"),
        click.option("--cpu-shares", type=int), click.option("--pids-limit", type=int),
        *blkio.click_options(),
        click.option("--ulimit", multiple=True), click.option("--cap-add", multiple=True),
        click.option("--cap-drop", multiple=True), click.option("--security-opt", multiple=True),
        click.option("--privileged", is_flag=True), click.option("--oom-kill-disable",
                                                                  is_flag=True),
        click.option("--network", "--net", "network", default="bridge",
                     help="bridge (default), none, host, container:NAME or a network's name"),
        click.option("--network-alias", "--net-alias", "network_alias", multiple=True),
        click.option("--ip", default=None, help="This address on a user-defined network."),
        click.option("--dns", multiple=True), click.option("--dns-search", multiple=True),
        click.option("--dns-option", "--dns-opt", "dns_option", multiple=True),
        click.option("--add-host", multiple=True, help="NAME:IP in /etc/hosts"),
        click.option("--log-opt", multiple=True, help="max-size=10m, max-file=3"),
        click.option("-v", "--volume", multiple=True, help="NAME:/path[:ro], /host:/path[:ro]"),
        click.option("--mount", multiple=True, help="type=volume|bind|tmpfs,source=,target="),
        click.option("--volumes-from", multiple=True),
        click.option("-p", "--publish", multiple=True,
                     help="[IP:][HOST:]CONTAINER[/tcp|udp], ranges as 8000-8002"),
        click.option("-P", "--publish-all", is_flag=True,
                     help="Publish the image's exposed ports to random host ports."),
        click.option("--health-cmd"), click.option("--health-interval"),
        click.option("--health-timeout"), click.option("--health-retries", type=int),
        click.option("--health-start-period"), click.option("--no-healthcheck", is_flag=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("create", context_settings={"allow_interspersed_args": False})
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create_cmd(engine: Engine, /, image: str, command: tuple[str, ...], **o: Any) -> None:
    """Create a new container."""
    record = engine.containers.create(spec_from_flags(image, command, o))
    click.echo(record.id)


@click.command("run", context_settings={"allow_interspersed_args": False})
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run in the background, print the ID.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_cmd(engine: Engine, /, image: str, command: tuple[str, ...], detach: bool,
            **o: Any) -> None:
    """Create and start a container; without -d, show its output and exit with its code."""
    spec = spec_from_flags(image, command, o)
    service = engine.containers
    record = service.create(spec)
    try:
        # Docker attaches before it starts: the supervisor creates the container and
        # waits for us, so the first byte of output comes to us from its stdio
        service.start(record.id, attach=not detach)
    except BaseException:
        if spec.auto_remove:
            service.remove_after_run(record.id)
        raise
    if detach:
        click.echo(record.id)
        return
    from dockyard.cli.attach import attach

    code = attach(service.bundle(record.id), tty_mode=spec.tty, stdin=spec.stdin_open)
    trace.mark(f"attach ended: exit code {code}")
    if code is None:  # no word from the supervisor: what the record says (re-adopted...)
        code = service.wait_exited(record.id, timeout=10**9).exit_code
    if spec.auto_remove:  # removed with its anonymous volumes by its exit hook: wait
        service.remove_after_run(record.id)
        trace.mark("removed")
    sys.exit(code)


def _each(refs: tuple[str, ...], action: Any) -> None:
    """Docker's multi-container behaviour: act on each, report failures, fail at the end."""
    from dockyard.errors import DockyardError

    failed = False
    for ref in refs:
        try:
            action(ref)
            click.echo(ref)
        except DockyardError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = True
    if failed:
        raise click.exceptions.Exit(1)


@click.command("attach")
@click.option("--no-stdin", is_flag=True)
@click.argument("container")
@click.pass_obj
def attach_cmd(engine: Engine, no_stdin: bool, container: str) -> None:
    """Attach this terminal to a running container's stdio; exit with its code."""
    from dockyard.cli.attach import attach

    record = engine.containers.get(container)
    if record.state not in ("running", "paused"):
        raise InvalidArgument("You cannot attach to a stopped container, start it first")
    code = attach(engine.containers.bundle(record.id), tty_mode=record.spec.tty,
                  stdin=record.spec.stdin_open and not no_stdin)
    if code is None:
        code = engine.containers.wait_exited(record.id, timeout=10**9).exit_code
    sys.exit(code)


@click.command("start")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start_cmd(engine: Engine, containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    _each(containers, engine.containers.start)


@click.command("stop")
@click.option("-t", "--time", "timeout", type=int, default=None)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop_cmd(engine: Engine, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Stop running containers (stop signal, then SIGKILL after the timeout)."""
    _each(containers, lambda ref: engine.containers.stop(ref, timeout))


@click.command("restart")
@click.option("-t", "--time", "timeout", type=int, default=None)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def restart_cmd(engine: Engine, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Restart containers (stop, then start)."""
    def restart(ref: str) -> None:
        engine.containers.stop(ref, timeout)
        engine.containers.start(ref)

    _each(containers, restart)


@click.command("kill")
@click.option("-s", "--signal", "sig", default="KILL")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill_cmd(engine: Engine, sig: str, containers: tuple[str, ...]) -> None:
    """Send a signal to running containers."""
    from dockyard.runtime.operations import parse_signal

    number = parse_signal(sig)
    _each(containers, lambda ref: engine.containers.kill(ref, number))


@click.command("rm")
@click.option("-f", "--force", is_flag=True)
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes too.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(engine: Engine, force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove containers."""
    _each(containers, lambda ref: engine.containers.remove(ref, force=force, volumes=volumes))


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait_cmd(engine: Engine, containers: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""
    for ref in containers:
        click.echo(engine.containers.wait_exited(ref, timeout=10**9).exit_code)


def _ports(engine: Engine, container_id: str) -> str:
    """Docker's PORTS column: 127.0.0.1:8080->80/tcp, …"""
    import json

    try:
        config = json.loads((engine.containers.bundle(container_id) / "network.json")
                            .read_text())
    except (OSError, ValueError):
        return ""
    return ", ".join(f"{ip or '0.0.0.0'}:{host}->{port}/{proto}"
                     for ip, host, port, proto in config.get("ports", []))


def _command_text(doc: dict[str, Any], no_trunc: bool) -> str:
    """Docker's COMMAND column: path and args, cut at 20 characters with an ellipsis."""
    text = " ".join([doc["Path"], *doc["Args"]])
    return text if no_trunc or len(text) <= 20 else text[:19] + "…"


def _status(record: Any, health: str | None = None) -> str:
    from dockyard.cli.render import human_ago

    if record.state == "restarting":  # Docker's: the exit code, and since when it waits
        return f"Restarting ({record.exit_code}) {human_ago(record.finished_at)}"
    if record.state in ("running", "paused"):
        up = "Up " + human_ago(record.started_at).removesuffix(" ago")
        if record.state == "paused":
            return up + " (Paused)"
        return f"{up} ({health})" if health else up
    if record.state == "created":
        return "Created"
    return f"Exited ({record.exit_code}) {human_ago(record.finished_at)}"


@click.command("ps")
@click.option("-a", "--all", "all_containers", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--no-trunc", is_flag=True)
@click.option("-f", "--filter", "filters", multiple=True)
@click.option("--format", "fmt", default=None)
@click.pass_obj
def ps_cmd(engine: Engine, all_containers: bool, quiet: bool, no_trunc: bool,
           filters: tuple[str, ...], fmt: str | None) -> None:
    """List containers."""
    records = engine.containers.list(all_containers=all_containers or bool(filters))
    for item in filters:
        key, _, value = item.partition("=")
        if key == "status":
            records = [r for r in records if r.state == value]
        elif key == "name":
            records = [r for r in records if value in r.name]
        elif key == "label":
            lk, _, lv = value.partition("=")
            records = [r for r in records if lk in r.spec.labels and
                       (not lv or r.spec.labels[lk] == lv)]
        elif key == "id":
            records = [r for r in records if r.id.startswith(value)]
        else:
            raise InvalidArgument(f"invalid filter {key!r}")
    if quiet:
        for record in records:
            click.echo(record.id if no_trunc else record.id[:12])
        return
    from dockyard.cli.render import container_fields, human_ago, render
    from dockyard.engine.inspect import health_of

    healths: dict[str, str] = {}
    for record in records:
        health = health_of(engine.containers.bundle(record.id))
        if health:
            healths[record.id] = health["Status"] if health["Status"] != "starting" \
                else "health: starting"
    rows = []
    for r in records:
        try:
            inspected = engine.containers.inspect(r.id)  # once: COMMAND and template fields
        except ContainerNotFound:
            continue  # removed while we list: left out, as Docker does
        rows.append({
            "ID": r.id if no_trunc else r.id[:12], "Image": r.image,
            "Command": f'"{_command_text(inspected, no_trunc)}"',
            "RunningFor": human_ago(r.created), "Status": _status(r, healths.get(r.id)),
            "Ports": _ports(engine, r.id) if r.state in ("running", "paused") else "",
            "Names": r.name, "State": r.state,
            **container_fields(inspected, not no_trunc)})
    click.echo(render(rows, ["ID", "Image", "Command", "RunningFor", "Status", "Ports",
                             "Names"], fmt,
                      {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                       "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS",
                       "Names": "NAMES"}))


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_obj
def port_cmd(engine: Engine, container: str, private_port: str | None) -> None:
    """List a container's published ports (or the mapping of one)."""
    ports = engine.containers.inspect(container)["NetworkSettings"]["Ports"]
    for key, bindings in sorted(ports.items()):
        if private_port and key not in (private_port, f"{private_port}/tcp"):
            continue
        for binding in bindings:
            address = f"{binding['HostIp']}:{binding['HostPort']}"
            click.echo(address if private_port else f"{key} -> {address}")


@click.command("logs")
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all")
@click.option("--since", default=None)
@click.option("-t", "--timestamps", is_flag=True)
@click.argument("container")
@click.pass_obj
def logs_cmd(engine: Engine, follow: bool, tail: str, since: str | None, timestamps: bool,
             container: str) -> None:
    """Fetch the logs of a container."""
    try:
        count = None if tail == "all" or int(tail) < 0 else int(tail)
    except ValueError:
        raise InvalidArgument(f"invalid --tail {tail!r}: want a number of lines or all") \
            from None
    for entry in engine.containers.logs(container, follow=follow, tail=count, since=since):
        stream = sys.stdout if entry["stream"] == "stdout" else sys.stderr
        stream.write((entry["time"] + " " if timestamps else "") + entry["log"])
        stream.flush()


@click.group("container")
def container_group() -> None:
    """Manage containers."""


@container_group.command("inspect")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None)
@click.pass_obj
def container_inspect(engine: Engine, containers: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more containers."""
    import json

    from dockyard.cli.render import render

    docs = [engine.containers.inspect(ref) for ref in containers]
    click.echo(render(docs, [], fmt) if fmt else json.dumps(docs, indent=4))


for _name, _cmd in (("create", create_cmd), ("run", run_cmd), ("start", start_cmd),
                    ("stop", stop_cmd), ("restart", restart_cmd), ("kill", kill_cmd),
                    ("rm", rm_cmd), ("ls", ps_cmd), ("logs", logs_cmd), ("wait", wait_cmd)):
    container_group.add_command(_cmd, _name)


COMMANDS = [attach_cmd, create_cmd, run_cmd, start_cmd, stop_cmd, restart_cmd, kill_cmd, rm_cmd,
            ps_cmd, port_cmd,
            logs_cmd,
            wait_cmd, container_group]
