"""Container commands: create, run, start, stop, kill, rm, ps, logs, wait, inspect."""

from __future__ import annotations

import sys
from typing import Any

import click

from dockyard.cli import container_cmds
from dockyard.cli.container_cmds import (
    KILL_OPTIONS,
    PS_OPTIONS,
    RM_OPTIONS,
    START_OPTIONS,
    STOP_OPTIONS,
)
from dockyard.cli.container_flags import CONTAINER_OPTIONS, RUN_OPTIONS, spec_from_flags
from dockyard.cli.errors import EXIT_RUN_ENGINE, report
from dockyard.cli.flagtable import click_options
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument


def container_options(func: Any) -> Any:
    return click_options(CONTAINER_OPTIONS)(func)


@click.command("create", context_settings={"allow_interspersed_args": False})
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create_cmd(engine: Engine, /, image: str, command: tuple[str, ...], **o: Any) -> None:
    """Create a new container."""
    try:
        spec = spec_from_flags(image, command, o)
    except InvalidArgument as exc:  # the flags' own errors: 125, as docker create's
        report(exc)
        sys.exit(EXIT_RUN_ENGINE)
    record = engine.containers.create(spec)
    click.echo(record.id)


@click.command("run", context_settings={"allow_interspersed_args": False})
@click_options(RUN_OPTIONS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_cmd(engine: Engine, /, image: str, command: tuple[str, ...], **o: Any) -> None:
    """Create and start a container; without -d, show its output and exit with its code."""
    sys.exit(container_cmds.run(engine, image, command, **o))


def _each(refs: tuple[str, ...], action: Any) -> None:
    """Docker's multi-container behaviour (``container_cmds.each``) for a click command."""
    _exit_with(container_cmds.each(refs, action))


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
@click_options(START_OPTIONS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start_cmd(engine: Engine, /, containers: tuple[str, ...], **o: Any) -> None:
    """Start one or more stopped containers."""
    _exit_with(container_cmds.start(engine, *containers, **o))


@click.command("stop")
@click_options(STOP_OPTIONS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop_cmd(engine: Engine, /, containers: tuple[str, ...], **o: Any) -> None:
    """Stop running containers (stop signal, then SIGKILL after the timeout)."""
    _exit_with(container_cmds.stop(engine, *containers, **o))


@click.command("restart")
@click_options(STOP_OPTIONS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def restart_cmd(engine: Engine, /, containers: tuple[str, ...], **o: Any) -> None:
    """Restart containers (stop, then start)."""
    _exit_with(container_cmds.restart(engine, *containers, **o))


@click.command("kill")
@click_options(KILL_OPTIONS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill_cmd(engine: Engine, /, containers: tuple[str, ...], **o: Any) -> None:
    """Send a signal to running containers."""
    _exit_with(container_cmds.kill(engine, *containers, **o))


def _exit_with(code: int) -> None:
    if code:
        raise click.exceptions.Exit(code)


@click.command("rm")
@click_options(RM_OPTIONS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(engine: Engine, /, containers: tuple[str, ...], **o: Any) -> None:
    """Remove containers."""
    code = container_cmds.rm(engine, *containers, **o)
    if code:
        raise click.exceptions.Exit(code)


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait_cmd(engine: Engine, containers: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""
    for ref in containers:
        click.echo(engine.containers.wait_exited(ref, timeout=10**9).exit_code)


@click.command("ps")
@click_options(PS_OPTIONS)
@click.pass_obj
def ps_cmd(engine: Engine, /, **o: Any) -> None:
    """List containers."""
    container_cmds.ps(engine, **o)


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
