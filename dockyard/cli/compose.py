"""``dockyard compose``: parse the flags, load and lower the file (``dockyard.compose``),
converge through the ``Engine``, render.  Never argv for our own CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from dockyard.cli.render import render
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument


class ComposeContext:
    """The group's options; the file is loaded by the command that needs it."""

    def __init__(self, engine: Engine, files: tuple[str, ...], project_name: str | None,
                 env_files: tuple[str, ...], project_directory: str | None) -> None:
        from dockyard.compose.loader import Options

        self.engine = engine
        self.options = Options(files, project_name, env_files, project_directory)

    def project(self) -> Any:
        """The loaded, validated, lowered project (a ``converge.Project``)."""
        from dockyard.compose.converge import Project
        from dockyard.compose.loader import load
        from dockyard.compose.lower import lower

        plan = lower(load(self.options, Path.cwd(), os.environ))
        return Project(self.engine, plan, _progress)


def _progress(line: str) -> None:
    click.echo(f" {line}", err=True)


@click.group("compose")
@click.option("-f", "--file", "files", multiple=True, metavar="FILE",
              help="Compose file(s), merged in order (default: compose.yaml upwards).")
@click.option("-p", "--project-name", default=None, help="Project name.")
@click.option("--env-file", "env_files", multiple=True, help="Instead of the project's .env.")
@click.option("--project-directory", default=None,
              help="Where relative paths start (default: the first file's directory).")
@click.pass_context
def compose_group(ctx: click.Context, files: tuple[str, ...], project_name: str | None,
                  env_files: tuple[str, ...], project_directory: str | None) -> None:
    """Define and run multi-container applications (the compose-spec)."""
    ctx.obj = ComposeContext(ctx.obj, files, project_name, env_files, project_directory)


def _scale(items: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, count = item.partition("=")
        if not name or not count.isdigit():
            raise InvalidArgument(f"invalid --scale {item!r}: want SERVICE=NUMBER")
        out[name] = int(count)
    return out


@compose_group.command("up")
@click.option("-d", "--detach", is_flag=True,
              help="Start in the background (else follow the logs; Ctrl-C stops).")
@click.option("--scale", multiple=True, metavar="SERVICE=NUM")
@click.option("--remove-orphans", is_flag=True)
@click.option("--wait-timeout", type=float, default=120.0,
              help="Seconds to wait for a dependency's condition (healthy, completed).")
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if unchanged.")
@click.option("--no-recreate", is_flag=True, help="Never recreate existing containers.")
@click.option("--no-deps", is_flag=True, help="Do not start the services' dependencies.")
@click.argument("services", nargs=-1)
@click.pass_obj
def up_cmd(ctx: ComposeContext, detach: bool, scale: tuple[str, ...], remove_orphans: bool,
           wait_timeout: float, force_recreate: bool, no_recreate: bool, no_deps: bool,
           services: tuple[str, ...]) -> None:
    """Create and start the project's containers (converging to the file)."""
    from dockyard.compose.converge import UpOptions

    if force_recreate and no_recreate:
        raise InvalidArgument("--force-recreate and --no-recreate are incompatible")
    recreate = "force" if force_recreate else "never" if no_recreate else "diverged"
    project = ctx.project()
    project.up(UpOptions(services, _scale(scale), remove_orphans, wait_timeout, recreate,
                         no_deps))
    if detach:
        return
    try:  # attached: the logs until every container exits; Ctrl-C stops the project
        _print_logs(project, project.containers(services), follow=True, tail=None)
    except KeyboardInterrupt:
        _progress("Gracefully stopping... (press Ctrl+C again to force)")
        project.stop(services)


@compose_group.command("down")
@click.option("-v", "--volumes", is_flag=True, help="Also the named volumes of the file.")
@click.option("--remove-orphans", is_flag=True)
@click.option("-t", "--timeout", type=int, default=None,
              help="Seconds to wait for a container to stop before killing it.")
@click.pass_obj
def down_cmd(ctx: ComposeContext, volumes: bool, remove_orphans: bool,
             timeout: int | None) -> None:
    """Stop and remove the project's containers and networks."""
    ctx.project().down(volumes=volumes, remove_orphans=remove_orphans, timeout=timeout)


@compose_group.command("ps")
@click.option("-a", "--all", "all_states", is_flag=True, help="Stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.option("--format", "fmt", default=None, help="table, json or a Go template.")
@click.argument("services", nargs=-1)
@click.pass_obj
def ps_cmd(ctx: ComposeContext, all_states: bool, quiet: bool, fmt: str | None,
           services: tuple[str, ...]) -> None:
    """List the project's containers."""
    from dockyard.compose import labels as L

    project = ctx.project()
    records = [r for r in project.containers(services)
               if all_states or r.state in ("running", "restarting", "paused")]
    if quiet:
        for record in records:
            click.echo(record.id)
        return
    rows = [{"ID": r.id[:12], "Name": r.name, "Image": r.image,
             "Service": r.spec.labels.get(L.SERVICE, ""), "Project": project.plan.name,
             "State": r.state, "Status": _status(r), "ExitCode": r.exit_code,
             "Labels": ",".join(f"{k}={v}" for k, v in sorted(r.spec.labels.items()))}
            for r in records]
    text = render(rows, ["Name", "Image", "Service", "Status"], fmt,
                  {"Name": "NAME", "Image": "IMAGE", "Service": "SERVICE", "Status": "STATUS"})
    if text:
        click.echo(text)


def _status(record: Any) -> str:
    if record.state == "exited":
        return f"Exited ({record.exit_code})"
    return str(record.state).capitalize()


@compose_group.command("logs")
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all")
@click.option("--no-log-prefix", is_flag=True)
@click.argument("services", nargs=-1)
@click.pass_obj
def logs_cmd(ctx: ComposeContext, follow: bool, tail: str, no_log_prefix: bool,
             services: tuple[str, ...]) -> None:
    """The logs of the project's containers, each line prefixed by its container."""
    try:
        count = None if tail == "all" or int(tail) < 0 else int(tail)
    except ValueError:
        raise InvalidArgument(f"invalid --tail {tail!r}: want a number of lines or all") \
            from None
    project = ctx.project()
    _print_logs(project, project.containers(services), follow=follow, tail=count,
                prefix=not no_log_prefix)


def _print_logs(project: Any, records: list[Any], *, follow: bool, tail: int | None,
                prefix: bool = True) -> None:
    from dockyard.compose.logs import stream_logs

    width = max((len(r.name) for r in records), default=0)
    for record, entry in stream_logs(project.engine, records, follow=follow, tail=tail):
        stream = sys.stdout if entry["stream"] == "stdout" else sys.stderr
        stream.write((f"{record.name.ljust(width)}  | " if prefix else "") + entry["log"])
        stream.flush()


@compose_group.command("config")
@click.option("--services", "only_services", is_flag=True, help="Only the service names.")
@click.option("-q", "--quiet", is_flag=True, help="Only validate.")
@click.pass_obj
def config_cmd(ctx: ComposeContext, only_services: bool, quiet: bool) -> None:
    """The resolved file: interpolated, merged, validated, as YAML."""
    import yaml

    project = ctx.project()
    if quiet:
        return
    if only_services:
        for name in project.plan.services:
            click.echo(name)
        return
    doc = {"name": project.plan.name, **project.plan.doc}
    click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False),
               nl=False)


@compose_group.command("convert")
@click.option("--kubernetes", is_flag=True,
              help="Kubernetes YAML (made by dockyard.kube.generate); required.")
@click.option("--kind", default="Deployment", show_default=True,
              type=click.Choice(["Deployment", "Pod", "Job", "DaemonSet"]))
@click.option("--pin", is_flag=True, help="Reference images by digest.")
@click.pass_obj
def convert_cmd(ctx: ComposeContext, kubernetes: bool, kind: str, pin: bool) -> None:
    """The project as Kubernetes YAML: depends_on becomes initContainers that wait on
    the dependency's Service (see `dockyard kube generate`)."""
    from dockyard.cli.kube import emit
    from dockyard.kube.generate import apps_from_compose

    if not kubernetes:
        raise InvalidArgument("compose convert: only --kubernetes is supported (the "
                              "resolved compose file is `compose config`)")
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


COMMANDS = [compose_group]
