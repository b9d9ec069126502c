"""The bodies of the hot ``compose`` commands (``up``, ``ps``, ``down``), without click:
the click commands of ``cli.compose`` and the fast path (``cli.fast``) both call
these, with the flags their ``flagtable`` rows give."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import trace
from dockyard.cli.flagtable import Opt, opt
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    from dockyard.build.executor import Reporter
    from dockyard.compose.converge import Project

STATES = ("paused", "restarting", "removing", "running", "dead", "created", "exited")

COMPOSE_OPTIONS: tuple[Opt, ...] = (
    opt("-f", "--file", dest="files", kind="multi",
        help="Compose file(s), merged in order (default: compose.yaml upwards)."),
    opt("-p", "--project-name", help="Project name."),
    opt("--env-file", dest="env_files", kind="multi", help="Instead of the project's .env."),
    opt("--project-directory",
        help="Where relative paths start (default: the first file's directory)."),
    opt("--profile", dest="profiles", kind="multi",
        help="Enable services of this profile (also COMPOSE_PROFILES)."),
)

UP_OPTIONS: tuple[Opt, ...] = (
    opt("-d", "--detach", kind="flag",
        help="Start in the background (else follow the logs; Ctrl-C stops)."),
    opt("--scale", kind="multi", help="SERVICE=NUM: this many containers of SERVICE."),
    opt("--remove-orphans", kind="flag"),
    opt("--wait-timeout", type=float, default=120.0,
        help="Seconds to wait for a dependency's condition (healthy, completed)."),
    opt("--force-recreate", kind="flag", help="Recreate containers even if unchanged."),
    opt("--no-recreate", kind="flag", help="Never recreate existing containers."),
    opt("--no-deps", kind="flag", help="Do not start the services' dependencies."),
    opt("--build", kind="flag", help="Build images before starting."),
    opt("--no-build", kind="flag", help="Do not build an image, even if missing."),
    opt("--wait", kind="flag",
        help="Wait for the services to be running and healthy (implies -d)."),
    opt("--abort-on-container-exit", dest="abort", kind="flag",
        help="Stop every container when one exits (attached)."),
    opt("--exit-code-from", dest="exit_from",
        help="SERVICE: exit with its code (implies --abort-on-container-exit)."),
)

PS_OPTIONS: tuple[Opt, ...] = (
    opt("-a", "--all", dest="all_states", kind="flag", help="Stopped containers too."),
    opt("-q", "--quiet", kind="flag", help="Only IDs."),
    opt("--format", dest="fmt", help="table, json or a Go template."),
    opt("--services", dest="only_services", kind="flag", help="Only the service names."),
    opt("--status", dest="statuses", kind="multi", choices=STATES,
        help="Only containers in this state (repeatable)."),
)

DOWN_OPTIONS: tuple[Opt, ...] = (
    opt("-v", "--volumes", kind="flag", help="Also the named volumes of the file."),
    opt("--remove-orphans", kind="flag"),
    opt("-t", "--timeout", type=int,
        help="Seconds to wait for a container to stop before killing it."),
    opt("--rmi", choices=("local", "all"),
        help="Also the images: local (built without an image name) or all."),
)


class ComposeContext:
    """The group's options; the file is loaded by the command that needs it."""

    def __init__(self, engine: Engine, files: tuple[str, ...] = (),
                 project_name: str | None = None, env_files: tuple[str, ...] = (),
                 project_directory: str | None = None,
                 profiles: tuple[str, ...] = ()) -> None:
        from dockyard.compose.files import Options

        self.engine = engine
        cache = engine.layout.root / "cache"
        self.options = Options(files, project_name, env_files, project_directory, profiles,
                               cache / "compose-valid")
        self.plans = cache / "compose-projects"

    def project(self, services: tuple[str, ...] = ()) -> Project:
        """The loaded, validated, lowered project (from the project cache while its
        files and variables are unchanged); the ``services`` named on the command
        line are enabled whatever their profiles."""
        from dockyard.compose.cache import project_plan
        from dockyard.compose.converge import Project

        plan = project_plan(self.options, Path.cwd(), os.environ, services, self.plans)
        return Project(self.engine, plan, progress, _build_reporter)


def _build_reporter() -> Reporter:
    from dockyard.cli.build_cmds import PlainReporter

    return PlainReporter()


def progress(line: str) -> None:
    sys.stderr.write(f" {line}\n")
    sys.stderr.flush()


def echo(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_scale(items: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, count = item.partition("=")
        if not name or not count.isdigit():
            raise InvalidArgument(f"invalid --scale {item!r}: want SERVICE=NUMBER")
        out[name] = int(count)
    return out


def up(ctx: ComposeContext, *services: str, detach: bool, scale: tuple[str, ...],
       remove_orphans: bool, wait_timeout: float, force_recreate: bool, no_recreate: bool,
       no_deps: bool, build: bool, no_build: bool, wait: bool, abort: bool,
       exit_from: str | None) -> int:
    """``compose up``: converge to the file; attached, the logs until the containers
    exit (Ctrl-C stops the project).  The exit code."""
    from dockyard.compose.converge import UpOptions

    trace.mark("compose: modules loaded")
    if force_recreate and no_recreate:
        raise InvalidArgument("--force-recreate and --no-recreate are incompatible")
    if build and no_build:
        raise InvalidArgument("--build and --no-build are incompatible")
    abort = abort or exit_from is not None
    if (detach or wait) and abort:
        raise InvalidArgument("--abort-on-container-exit and --exit-code-from need an "
                              "attached up (no -d, no --wait)")
    recreate = "force" if force_recreate else "never" if no_recreate else "diverged"
    project = ctx.project(services)
    trace.mark("compose: project read")
    if exit_from is not None:
        project.check_services((exit_from,))
    project.up(UpOptions(services, parse_scale(scale), remove_orphans, wait_timeout, recreate,
                         no_deps, "always" if build else "never" if no_build else "missing"))
    trace.mark("compose: converged")
    if wait:
        project.wait_ready(services, wait_timeout)
        return 0
    if detach:
        return 0
    try:  # attached: the logs until every container exits; Ctrl-C stops the project
        code = print_logs(project, project.containers(services), follow=True, tail=None,
                          abort=abort, exit_from=exit_from)
    except KeyboardInterrupt:
        progress("Gracefully stopping... (press Ctrl+C again to force)")
        project.stop(services)
        return 0
    if abort:
        project.stop(services)
        return code
    return 0


def down(ctx: ComposeContext, *, volumes: bool, remove_orphans: bool, timeout: int | None,
         rmi: str | None) -> int:
    """``compose down``: the project's containers, networks (and volumes, images)."""
    ctx.project().down(volumes=volumes, remove_orphans=remove_orphans, timeout=timeout,
                       rmi=rmi)
    return 0


def ps(ctx: ComposeContext, *services: str, all_states: bool, quiet: bool, fmt: str | None,
       only_services: bool, statuses: tuple[str, ...]) -> int:
    """``compose ps``: the project's containers."""
    from dockyard.compose import labels as L

    project = ctx.project()
    records = [r for r in project.containers(services)
               if (all_states or statuses or r.state in ("running", "restarting", "paused"))
               and (not statuses or r.state in statuses)]
    if only_services:
        for name in dict.fromkeys(r.spec.labels.get(L.SERVICE, "") for r in records):
            echo(name)
        return 0
    if quiet:
        for record in records:
            echo(record.id)
        return 0
    from dockyard.cli.render import render

    rows = [{"ID": r.id[:12], "Name": r.name, "Image": r.image,
             "Service": r.spec.labels.get(L.SERVICE, ""), "Project": project.plan.name,
             "State": r.state, "Status": _status(r), "ExitCode": r.exit_code,
             "Labels": ",".join(f"{k}={v}" for k, v in sorted(r.spec.labels.items()))}
            for r in records]
    text = render(rows, ["Name", "Image", "Service", "Status"], fmt,
                  {"Name": "NAME", "Image": "IMAGE", "Service": "SERVICE", "Status": "STATUS"})
    if text:
        echo(text)
    return 0


def _status(record: Any) -> str:
    if record.state == "exited":
        return f"Exited ({record.exit_code})"
    return str(record.state).capitalize()


COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")  # Compose's order


def print_logs(project: Project, records: list[Any], *, follow: bool, tail: int | None,
               prefix: bool = True, abort: bool = False, exit_from: str | None = None,
               timestamps: bool = False, color: bool = True) -> int:
    """Print the logs, each line prefixed by its container (coloured by service on a
    terminal); with ``abort``, until the first container exits: then its exit code
    (or, with ``exit_from``, that service's container's)."""
    from dockyard.compose import labels as L
    from dockyard.compose.logs import stream_logs

    width = max((len(r.name) for r in records), default=0)
    services = list(dict.fromkeys(r.spec.labels.get(L.SERVICE, "") for r in records))
    color = color and sys.stdout.isatty()

    def label(record: Any) -> str:
        text = f"{record.name.ljust(width)}  | "
        if not color:
            return text
        code = COLOURS[services.index(record.spec.labels.get(L.SERVICE, "")) % len(COLOURS)]
        return f"\x1b[{code}m{text}\x1b[0m"

    for record, entry in stream_logs(project.engine, records, follow=follow, tail=tail,
                                     ends=abort):
        if not entry:  # a container exited
            progress(f"{record.name} exited")
            if exit_from is None:
                return int(project.engine.containers.wait_exited(record.id).exit_code or 0)
            chosen = [r for r in records if r.spec.labels.get(L.SERVICE) == exit_from]
            if chosen and record.id != chosen[0].id:
                project.stop((exit_from,))
            done = project.engine.containers.wait_exited(chosen[0].id) if chosen else None
            return int(done.exit_code or 0) if done else 0
        stream = sys.stdout if entry["stream"] == "stdout" else sys.stderr
        stamp = f"{entry.get('time', '')} " if timestamps else ""
        stream.write((label(record) if prefix else "") + stamp + entry["log"])
        stream.flush()
    return 0
