"""``dockyard compose``: parse the flags, load and lower the file (``dockyard.compose``),
converge through the ``Engine``, render.  Never argv for our own CLI."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from dockyard.cli.compose_cmds import (
    COMPOSE_OPTIONS,
    DOWN_OPTIONS,
    PS_OPTIONS,
    UP_OPTIONS,
    ComposeContext,
    down,
    parse_scale,
    print_logs,
    ps,
    up,
)
from dockyard.cli.compose_cmds import progress as _progress
from dockyard.cli.flagtable import click_options
from dockyard.cli.render import render
from dockyard.errors import DockyardError, InvalidArgument


@click.group("compose")
@click_options(COMPOSE_OPTIONS)
@click.pass_context
def compose_group(ctx: click.Context, /, **options: Any) -> None:
    """Define and run multi-container applications (the compose-spec)."""
    ctx.obj = ComposeContext(ctx.obj, **options)


@compose_group.command("up")
@click_options(UP_OPTIONS)
@click.argument("services", nargs=-1)
@click.pass_obj
def up_cmd(ctx: ComposeContext, /, services: tuple[str, ...], **options: Any) -> None:
    """Create and start the project's containers (converging to the file)."""
    code = up(ctx, *services, **options)
    if code:
        sys.exit(code)


@compose_group.command("down")
@click_options(DOWN_OPTIONS)
@click.pass_obj
def down_cmd(ctx: ComposeContext, /, **options: Any) -> None:
    """Stop and remove the project's containers and networks."""
    down(ctx, **options)


@compose_group.command("ps")
@click_options(PS_OPTIONS)
@click.argument("services", nargs=-1)
@click.pass_obj
def ps_cmd(ctx: ComposeContext, /, services: tuple[str, ...], **options: Any) -> None:
    """List the project's containers."""
    ps(ctx, *services, **options)


@compose_group.command("logs")
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all")
@click.option("--no-log-prefix", is_flag=True)
@click.option("-t", "--timestamps", is_flag=True, help="Each line's time too.")
@click.option("--no-color", is_flag=True, help="No colours (the default off a terminal).")
@click.argument("services", nargs=-1)
@click.pass_obj
def logs_cmd(ctx: ComposeContext, follow: bool, tail: str, no_log_prefix: bool,
             timestamps: bool, no_color: bool, services: tuple[str, ...]) -> None:
    """The logs of the project's containers, each line prefixed by its container."""
    try:
        count = None if tail == "all" or int(tail) < 0 else int(tail)
    except ValueError:
        raise InvalidArgument(f"invalid --tail {tail!r}: want a number of lines or all") \
            from None
    project = ctx.project()
    print_logs(project, project.containers(services), follow=follow, tail=count,
               prefix=not no_log_prefix, timestamps=timestamps, color=not no_color)


@compose_group.command("config")
@click.option("--services", "only_services", is_flag=True, help="Only the service names.")
@click.option("--volumes", "only_volumes", is_flag=True, help="Only the volume names.")
@click.option("--hash", "hashes", default=None, metavar="SERVICES",
              help="The config hash of these services (* for all).")
@click.option("-q", "--quiet", is_flag=True, help="Only validate.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              help="The document's format.")
@click.pass_obj
def config_cmd(ctx: ComposeContext, only_services: bool, only_volumes: bool,
               hashes: str | None, quiet: bool, fmt: str) -> None:
    """The resolved project in Compose's long form (as `docker compose config`)."""
    if only_volumes or hashes is not None:
        project = ctx.project()
        if only_volumes or hashes is None:
            for key in project.plan.volumes:
                click.echo(key)
        else:
            wanted = list(project.plan.services) if hashes == "*" else hashes.split(",")
            project.check_services(tuple(wanted))
            for name in wanted:
                click.echo(f"{name} {project.plan.services[name].config_hash}")
        return
    _config(ctx, only_services, quiet, fmt)


def _config(ctx: ComposeContext, only_services: bool, quiet: bool, fmt: str = "yaml") -> None:
    """The resolved project (interpolated, merged, validated) in the long form."""
    from dockyard.compose.longform import long_form, to_yaml

    project = ctx.project()
    if quiet:
        return
    if only_services:
        for name in project.plan.services:
            click.echo(name)
        return
    doc = long_form(project.plan)
    if fmt == "json":
        import json

        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(to_yaml(doc), nl=False)


@compose_group.command("convert")
@click.option("--services", "only_services", is_flag=True, help="Only the service names.")
@click.option("-q", "--quiet", is_flag=True, help="Only validate.")
@click.option("--kubernetes", is_flag=True,
              help="Kubernetes YAML instead (made by dockyard.kube.generate).")
@click.option("--kind", default="Deployment", show_default=True,
              type=click.Choice(["Deployment", "Pod", "Job", "DaemonSet"]),
              help="With --kubernetes: the workload kind.")
@click.option("--pin", is_flag=True, help="With --kubernetes: images by digest.")
@click.pass_obj
def convert_cmd(ctx: ComposeContext, only_services: bool, quiet: bool, kubernetes: bool,
                kind: str, pin: bool) -> None:
    """The same as config; with --kubernetes, the project as Kubernetes YAML, where
    depends_on becomes initContainers that wait on the dependency's Service (see
    `dockyard kube generate`)."""
    if not kubernetes:
        _config(ctx, only_services, quiet)
        return
    from dockyard.cli.kube import emit
    from dockyard.kube.generate import apps_from_compose

    emit(ctx.engine, apps_from_compose(ctx.project().plan), kind, pin)


@compose_group.command("stop")
@click.option("-t", "--timeout", type=int, default=None,
              help="Seconds to wait for a container to stop before killing it.")
@click.argument("services", nargs=-1)
@click.pass_obj
def stop_cmd(ctx: ComposeContext, timeout: int | None, services: tuple[str, ...]) -> None:
    """Stop the project's containers (dependents first)."""
    ctx.project().stop(services, timeout)


@compose_group.command("start")
@click.argument("services", nargs=-1)
@click.pass_obj
def start_cmd(ctx: ComposeContext, services: tuple[str, ...]) -> None:
    """Start the project's existing containers."""
    ctx.project().start(services)


@compose_group.command("restart")
@click.option("-t", "--timeout", type=int, default=None,
              help="Seconds to wait for a container to stop before killing it.")
@click.argument("services", nargs=-1)
@click.pass_obj
def restart_cmd(ctx: ComposeContext, timeout: int | None, services: tuple[str, ...]) -> None:
    """Restart the project's containers."""
    ctx.project().restart(services, timeout)


@compose_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not ask (there is no asking here).")
@click.option("-s", "--stop", is_flag=True, help="Stop running containers first.")
@click.option("-v", "--volumes", is_flag=True, help="Their anonymous volumes too.")
@click.argument("services", nargs=-1)
@click.pass_obj
def rm_cmd(ctx: ComposeContext, force: bool, stop: bool, volumes: bool,
           services: tuple[str, ...]) -> None:
    """Remove the project's stopped containers."""
    ctx.project().rm(services, stop=stop, volumes=volumes)


@compose_group.command("build")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--pull", is_flag=True, help="Always pull base images.")
@click.argument("services", nargs=-1)
@click.pass_obj
def build_cmd(ctx: ComposeContext, no_cache: bool, pull: bool,
              services: tuple[str, ...]) -> None:
    """Build the services that have a build section."""
    project = ctx.project(services)
    project.check_services(services)
    for name in services or tuple(project.plan.services):
        plan = project.plan.services[name]
        if plan.build is None:
            if services:
                raise InvalidArgument(f"service {name!r} has no build section")
            continue
        if no_cache or pull:
            build = plan.build._replace(no_cache=plan.build.no_cache or no_cache,
                                        pull=plan.build.pull or pull)
            project.plan.services[name] = plan._replace(build=build)
        project.build(name)


@compose_group.command("pull")
@click.option("--ignore-buildable", is_flag=True, help="Skip services that have a build.")
@click.argument("services", nargs=-1)
@click.pass_obj
def pull_cmd(ctx: ComposeContext, ignore_buildable: bool, services: tuple[str, ...]) -> None:
    """Pull the services' images."""
    project = ctx.project(services)
    project.check_services(services)
    for name in services or tuple(project.plan.services):
        if ignore_buildable and project.plan.services[name].build is not None:
            continue
        project.pull(name)


@compose_group.command("push")
@click.argument("services", nargs=-1)
@click.pass_obj
def push_cmd(ctx: ComposeContext, services: tuple[str, ...]) -> None:
    """Push the images of the services that have a build section."""
    from dockyard.oci import reference
    from dockyard.registry.transfer import push

    project = ctx.project(services)
    project.check_services(services)
    engine = ctx.engine
    for name in services or tuple(project.plan.services):
        plan = project.plan.services[name]
        if plan.build is None:
            continue
        image = plan.spec.image
        reference.parse(image)
        _progress(f"Image {image}  Pushing")
        push(engine.images.content, engine.images.index, engine.images.get(image), image,
             insecure=frozenset(engine.insecure_registries))
        _progress(f"Image {image}  Pushed")


@compose_group.command("create")
@click.option("--build", "build", is_flag=True, help="Build images before creating.")
@click.option("--no-build", is_flag=True, help="Do not build an image, even if missing.")
@click.option("--force-recreate", is_flag=True)
@click.option("--no-recreate", is_flag=True)
@click.argument("services", nargs=-1)
@click.pass_obj
def create_cmd(ctx: ComposeContext, build: bool, no_build: bool, force_recreate: bool,
               no_recreate: bool, services: tuple[str, ...]) -> None:
    """Create the project's containers without starting them."""
    from dockyard.compose.converge import UpOptions

    recreate = "force" if force_recreate else "never" if no_recreate else "diverged"
    ctx.project(services).up(UpOptions(
        services, recreate=recreate, start=False,
        build="always" if build else "never" if no_build else "missing"))


@compose_group.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True,
              help="No pseudo-TTY (the default when stdin is not a terminal).")
@click.option("-u", "--user", default=None)
@click.option("-w", "--workdir", default=None)
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE")
@click.option("--index", type=int, default=1, help="Which replica (default 1).")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_cmd(ctx: ComposeContext, detach: bool, no_tty: bool, user: str | None,
             workdir: str | None, env: tuple[str, ...], index: int, service: str,
             command: tuple[str, ...]) -> None:
    """Run a command in a running container of SERVICE."""
    from dockyard.cli.container_cmds import exec_

    record = ctx.project((service,)).container(service, index)
    tty = not no_tty and not detach and sys.stdin.isatty()
    sys.exit(exec_(ctx.engine, record.id, *command, detach=detach, interactive=not detach,
                   tty=tty, env=env, user=user, workdir=workdir))


@compose_group.command("run", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run in the background, print its ID.")
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE")
@click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.option("--name", default=None)
@click.option("--entrypoint", default=None)
@click.option("-u", "--user", default=None)
@click.option("-w", "--workdir", default=None)
@click.option("-T", "--no-TTY", "no_tty", is_flag=True, help="No pseudo-TTY.")
@click.option("--no-deps", is_flag=True, help="Do not start the service's dependencies.")
@click.option("--service-ports", is_flag=True, help="Publish the service's ports.")
@click.option("-p", "--publish", "publish", multiple=True, help="Publish a port too.")
@click.option("-v", "--volume", "volumes", multiple=True, help="Bind or mount a volume too.")
@click.option("--use-aliases", is_flag=True, help="The service's network aliases too.")
@click.option("--build", "build", is_flag=True, help="Build the image first.")
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_cmd(ctx: ComposeContext, detach: bool, remove: bool, env: tuple[str, ...],
            labels: tuple[str, ...], name: str | None, entrypoint: str | None,
            user: str | None, workdir: str | None, no_tty: bool, no_deps: bool,
            service_ports: bool, publish: tuple[str, ...], volumes: tuple[str, ...],
            use_aliases: bool, build: bool, service: str,
            command: tuple[str, ...]) -> None:
    """A one-off container of SERVICE running COMMAND (default: the service's)."""
    import shlex

    from dockyard.cli.container_cmds import echo, run_created
    from dockyard.compose.converge import OneOff

    project = ctx.project((service,))
    project.prepare_run(service, no_deps=no_deps, build="always" if build else "missing")
    tty = not no_tty and not detach and sys.stdin.isatty()
    from dockyard.engine.flags import parse_publish, parse_volume

    options = OneOff(tuple(command) or None,
                     tuple(shlex.split(entrypoint)) if entrypoint is not None else None,
                     tuple(_with_values(env)), user, workdir, name,
                     dict(item.partition("=")[::2] for item in labels), tty,
                     not detach and sys.stdin.isatty() or tty, remove, service_ports,
                     tuple(p for text in publish for p in parse_publish(text)),
                     tuple(parse_volume(text) for text in volumes), use_aliases)
    record = project.one_off(service, options)
    if detach:  # its ID, as Docker Compose prints
        ctx.engine.containers.start(record.id)
        echo(record.id)
        return
    sys.exit(run_created(ctx.engine, record, detach=False))


def _with_values(env: tuple[str, ...]) -> list[str]:
    """``-e NAME`` takes NAME's value from this environment (dropped when unset)."""
    out = []
    for item in env:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


@compose_group.command("kill")
@click.option("-s", "--signal", "sig", default="SIGKILL")
@click.argument("services", nargs=-1)
@click.pass_obj
def kill_cmd(ctx: ComposeContext, sig: str, services: tuple[str, ...]) -> None:
    """Kill the project's running containers."""
    import signal

    name = sig.upper() if sig.upper().startswith("SIG") else f"SIG{sig.upper()}"
    try:
        number = int(sig) if sig.isdigit() else int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {sig}") from None
    project = ctx.project(services)
    project.check_services(services)
    for record in project.containers(services):
        if record.state in ("running", "restarting", "paused"):
            _progress(f"Container {record.name}  Killing")
            ctx.engine.containers.kill(record.id, number)


@compose_group.command("pause")
@click.argument("services", nargs=-1)
@click.pass_obj
def pause_cmd(ctx: ComposeContext, services: tuple[str, ...]) -> None:
    """Pause the project's running containers."""
    project = ctx.project(services)
    project.check_services(services)
    for record in project.containers(services):
        if record.state == "running":
            _progress(f"Container {record.name}  Pausing")
            ctx.engine.container_ops.pause(record.id)


@compose_group.command("unpause")
@click.argument("services", nargs=-1)
@click.pass_obj
def unpause_cmd(ctx: ComposeContext, services: tuple[str, ...]) -> None:
    """Unpause the project's paused containers."""
    project = ctx.project(services)
    project.check_services(services)
    for record in project.containers(services):
        if record.state == "paused":
            _progress(f"Container {record.name}  Unpausing")
            ctx.engine.container_ops.unpause(record.id)


@compose_group.command("top")
@click.argument("services", nargs=-1)
@click.pass_obj
def top_cmd(ctx: ComposeContext, services: tuple[str, ...]) -> None:
    """The processes of the project's running containers."""
    project = ctx.project(services)
    project.check_services(services)
    for record in project.containers(services):
        if record.state != "running":
            continue
        titles, rows = ctx.engine.container_ops.top(record.id)
        click.echo(record.name)
        widths = [max(len(str(c)) for c in column) for column in zip(titles, *rows, strict=False)]
        for row in (titles, *rows):
            click.echo("   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False))
                       .rstrip())
        click.echo("")


@compose_group.command("port")
@click.option("--protocol", default="tcp", type=click.Choice(["tcp", "udp"]))
@click.option("--index", type=int, default=1)
@click.argument("service")
@click.argument("private_port", type=int)
@click.pass_obj
def port_cmd(ctx: ComposeContext, protocol: str, index: int, service: str,
             private_port: int) -> None:
    """The public address of a service's port."""
    record = ctx.project((service,)).container(service, index)
    ports = ctx.engine.containers.inspect(record.id)["NetworkSettings"].get("Ports") or {}
    bindings = ports.get(f"{private_port}/{protocol}") or []
    if not bindings:
        raise InvalidArgument(f"no port {private_port}/{protocol} for container "
                              f"{record.name}")
    binding = bindings[0]
    click.echo(f"{binding.get('HostIp') or '0.0.0.0'}:{binding['HostPort']}")


@compose_group.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.option("--format", "fmt", default=None, help="table or json.")
@click.argument("services", nargs=-1)
@click.pass_obj
def images_cmd(ctx: ComposeContext, quiet: bool, fmt: str | None,
               services: tuple[str, ...]) -> None:
    """The images of the project's containers."""
    from dockyard.compose import labels as L

    project = ctx.project(services)
    rows = []
    for record in project.containers(services):
        image_id = record.spec.labels.get(L.IMAGE) or record.image
        repository, _, tag = record.spec.image.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = record.spec.image, "latest"
        try:
            size = ctx.engine.images.get(image_id).size
        except DockyardError:
            size = 0
        rows.append({"ContainerName": record.name, "Repository": repository, "Tag": tag,
                     "ID": image_id, "Size": size})
    if quiet:
        for shown_id in dict.fromkeys(str(row["ID"]) for row in rows):
            click.echo(shown_id)
        return
    shown = [{**row, "ID": str(row["ID"]).removeprefix("sha256:")[:12]} for row in rows]
    text = render(shown, ["ContainerName", "Repository", "Tag", "ID", "Size"], fmt,
                  {"ContainerName": "CONTAINER", "Repository": "REPOSITORY", "Tag": "TAG",
                   "ID": "IMAGE ID", "Size": "SIZE"})
    if text:
        click.echo(text)


@compose_group.command("ls")
@click.option("-a", "--all", "all_states", is_flag=True, help="Stopped projects too.")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.option("--format", "fmt", default=None, help="table or json.")
@click.pass_obj
def ls_cmd(ctx: ComposeContext, all_states: bool, quiet: bool, fmt: str | None) -> None:
    """The projects that have containers here."""
    from dockyard.compose import labels as L

    projects: dict[str, dict[str, Any]] = {}
    for record in ctx.engine.containers.list(all_containers=True):
        name = record.spec.labels.get(L.PROJECT)
        if not name:
            continue
        entry = projects.setdefault(name, {"Name": name, "states": {},
                                           "ConfigFiles": record.spec.labels.get(
                                               L.CONFIG_FILES, "")})
        entry["states"][record.state] = entry["states"].get(record.state, 0) + 1
    rows = []
    for _name, entry in sorted(projects.items()):
        states = entry.pop("states")
        if not all_states and "running" not in states:
            continue
        entry["Status"] = ", ".join(f"{state}({count})" for state, count in sorted(
            states.items()))
        rows.append(entry)
    if quiet:
        for row in rows:
            click.echo(row["Name"])
        return
    text = render(rows, ["Name", "Status", "ConfigFiles"], fmt,
                  {"Name": "NAME", "Status": "STATUS", "ConfigFiles": "CONFIG FILES"})
    if text:
        click.echo(text)


@compose_group.command("watch")
@click.option("--no-up", is_flag=True, help="Do not build and start the services first.")
@click.option("--quiet", is_flag=True, help="Say nothing but errors.")
@click.option("--interval", type=float, default=0.25, hidden=True,
              help="Seconds between two looks at the watched files.")
@click.argument("services", nargs=-1)
@click.pass_obj
def watch_cmd(ctx: ComposeContext, no_up: bool, quiet: bool, interval: float,
              services: tuple[str, ...]) -> None:
    """Apply the services' develop.watch rules as their files change (Ctrl-C ends)."""
    import signal

    from dockyard.compose.converge import UpOptions
    from dockyard.compose.watch import Watcher, rules_of

    project = ctx.project(services)
    project.check_services(services)
    rules = rules_of(project, services)
    if not no_up:
        project.up(UpOptions(services))
    ended = []
    signal.signal(signal.SIGTERM, lambda *_: ended.append(True))
    report = (lambda line: None) if quiet else _progress
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the watch, not the app
        Watcher(project, rules, report).run(lambda: bool(ended), interval)


@compose_group.command("events")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--since", default=None, help="Also the events since this time.")
@click.option("--until", default=None, help="Stop at this time.")
@click.argument("services", nargs=-1)
@click.pass_obj
def events_cmd(ctx: ComposeContext, as_json: bool, since: str | None, until: str | None,
               services: tuple[str, ...]) -> None:
    """The project's container events as they happen (Ctrl-C ends)."""
    import datetime
    import json
    import time

    from dockyard.compose import labels as L
    from dockyard.engine.events import parse_time

    project = ctx.project(services)
    project.check_services(services)
    start = parse_time(since) if since else None
    end = parse_time(until) if until else None
    follow = end is None or end > time.time()
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        for event in ctx.engine.events.read(since=start, until=end, follow=follow):
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            service = attributes.get(L.SERVICE, "")
            if event.get("Type") != "container" or \
                    attributes.get(L.PROJECT) != project.plan.name or \
                    (services and service not in services):
                continue
            stamp = datetime.datetime.fromtimestamp(event.get("timeNano", 0) / 1e9)
            shown = {k: v for k, v in attributes.items() if k in ("image", "name")}
            if as_json:
                click.echo(json.dumps({
                    "action": event.get("Action"), "attributes": shown,
                    "id": (event.get("Actor") or {}).get("ID"), "service": service,
                    "time": stamp.isoformat(), "type": "container"}))
            else:
                details = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
                click.echo(f"{stamp.isoformat(sep=' ')} container {event.get('Action')} "
                           f"{(event.get('Actor') or {}).get('ID')} ({details})")


@compose_group.command("stats")
@click.option("--no-stream", is_flag=True, help="One sample (the only kind here).")
@click.option("--format", "fmt", default=None, help="table, json or a Go template.")
@click.argument("services", nargs=-1)
@click.pass_obj
def stats_cmd(ctx: ComposeContext, no_stream: bool, fmt: str | None,
              services: tuple[str, ...]) -> None:
    """Resource usage of the project's running containers (the stats command's)."""
    from dockyard.cli.container_ops import stats_cmd as container_stats

    project = ctx.project(services)
    project.check_services(services)
    ids = tuple(r.id for r in project.containers(services) if r.state == "running")
    if not ids:
        return
    with click.Context(container_stats, obj=ctx.engine) as sub:
        sub.invoke(container_stats, no_stream=True, fmt=fmt, containers=ids)


@compose_group.command("attach")
@click.option("--index", type=int, default=1, help="Which replica (default 1).")
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin.")
@click.argument("service")
@click.pass_obj
def attach_cmd(ctx: ComposeContext, index: int, no_stdin: bool, service: str) -> None:
    """Attach this terminal to a service's container (the attach command's)."""
    from dockyard.cli.containers import attach_cmd as container_attach

    record = ctx.project((service,)).container(service, index)
    with click.Context(container_attach, obj=ctx.engine) as sub:
        sub.invoke(container_attach, no_stdin=no_stdin, container=record.id)


@compose_group.command("version")
@click.option("--short", is_flag=True, help="Only the version number.")
@click.option("-f", "--format", "fmt", type=click.Choice(["pretty", "json"]), default="pretty")
def version_cmd(short: bool, fmt: str) -> None:
    """The version of dockyard compose (dockyard's)."""
    import json

    from dockyard import __version__ as number

    if short:
        click.echo(number)
    elif fmt == "json":
        click.echo(json.dumps({"version": number}))
    else:
        click.echo(f"dockyard compose version {number}")


@compose_group.command("scale")
@click.option("--no-deps", is_flag=True, help="Do not start the services' dependencies.")
@click.argument("scales", nargs=-1, required=True, metavar="SERVICE=REPLICAS...")
@click.pass_obj
def scale_cmd(ctx: ComposeContext, no_deps: bool, scales: tuple[str, ...]) -> None:
    """Set the number of containers of services."""
    from dockyard.compose.converge import UpOptions

    wanted = parse_scale(scales)
    ctx.project(tuple(wanted)).up(UpOptions(tuple(wanted), wanted, no_deps=no_deps))


@compose_group.command("wait")
@click.option("--down-project", is_flag=True, help="Take the project down afterwards.")
@click.argument("services", nargs=-1, required=True)
@click.pass_obj
def wait_cmd(ctx: ComposeContext, down_project: bool, services: tuple[str, ...]) -> None:
    """Wait for the services' containers to stop; print their exit codes and exit with
    the first one's."""
    project = ctx.project(services)
    project.check_services(services)
    codes = []
    for record in project.containers(services):
        done = ctx.engine.containers.wait_exited(record.id, timeout=10**9)
        codes.append(int(done.exit_code or 0))
        click.echo(f"{record.name} exited with code {codes[-1]}")
    if down_project:
        project.down(volumes=False, remove_orphans=False)
    sys.exit(codes[0] if codes else 0)


@compose_group.command("cp")
@click.option("--index", type=int, default=1, help="Which replica (default 1).")
@click.argument("source")
@click.argument("dest")
@click.pass_obj
def cp_cmd(ctx: ComposeContext, index: int, source: str, dest: str) -> None:
    """Copy files between a service's container and the host (SERVICE:PATH, a path, -)."""
    from dockyard.cli.container_ops import cp_cmd as container_cp

    def resolve(text: str) -> str:
        if ":" in text and not text.startswith(("/", ".")):
            service, path = text.split(":", 1)
            return f"{ctx.project((service,)).container(service, index).id}:{path}"
        return text

    with click.Context(container_cp, obj=ctx.engine) as sub:
        sub.invoke(container_cp, source=resolve(source), dest=resolve(dest))


COMMANDS = [compose_group]
