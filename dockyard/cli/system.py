"""System commands: disk usage, the consistency check, restore and reset."""

from __future__ import annotations

import contextlib

import click

from dockyard.cli.render import human_size, render
from dockyard.engine.engine import Engine


@click.group("system")
def system_group() -> None:
    """Manage dockyard itself."""


@system_group.command("df")
@click.pass_obj
def system_df(engine: Engine) -> None:
    """Show disk usage."""
    usage = engine.images.disk_usage()
    rows = [{"Type": "Images", "Total": str(usage["Images"]),
             "Size": human_size(usage["BlobBytes"]),
             "Unpacked": human_size(usage["LayerBytes"]),
             "Reclaimable": human_size(usage["Reclaimable"])}]
    click.echo(render(rows, ["Type", "Total", "Size", "Unpacked", "Reclaimable"], None,
                      {"Type": "TYPE", "Total": "TOTAL", "Size": "SIZE",
                       "Unpacked": "UNPACKED", "Reclaimable": "RECLAIMABLE"}))


@system_group.command("check")
@click.option("--repair", is_flag=True,
              help="Fix what can be fixed (container, build and network leftovers).")
@click.pass_obj
def system_check(engine: Engine, repair: bool) -> None:
    """Verify every blob, image and container record; exit 1 and list problems if any."""
    problems = engine.images.check(repair=repair) + engine.containers.check(repair=repair)
    # a plain check changes nothing: a dead supervisor is reported, not re-adopted here
    containers = engine.containers.list(all_containers=True, recover=repair)
    problems += engine.builds.check(repair=repair)
    problems += engine.networks.check({r.id for r in containers},
                                      {r.id for r in containers
                                       if r.state in ("running", "paused", "restarting")},
                                      repair=repair)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo("ok: store consistent")


@system_group.command("reset")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_obj
def system_reset(engine: Engine, force: bool) -> None:
    """Remove all containers, images, volumes, networks and build cache of this root,
    the host objects it made (bridges, veths, iptables chains, cgroups), and its
    directories; also when the root directory was already deleted by hand."""
    layout = engine.layout
    if not force:
        click.echo("WARNING! This will remove:\n"
                   "        - all containers\n        - all images\n"
                   "        - all networks, their bridges and iptables chains\n"
                   "        - all build cache\n        - all volumes\n"
                   f'        - the root directory: "{layout.root}"\n'
                   f'        - the run directory: "{layout.run_dir}"', err=True)
        try:
            answer = click.prompt("Are you sure you want to continue? [y/N]", default="",
                                  show_default=False, prompt_suffix=" ", err=True)
        except click.exceptions.Abort:  # no terminal, no answer: no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            return
    from dockyard.engine.reset import reset

    for line in reset(engine):
        click.echo(line)


@system_group.command("restore")
@click.pass_obj
def system_restore(engine: Engine) -> None:
    """Restart containers whose restart policy says so after a crash or reboot."""
    for container_id in engine.containers.restore():
        click.echo(container_id)


@system_group.command("container-exited", hidden=True)
@click.argument("container_id")
@click.pass_obj
def container_exited(engine: Engine, container_id: str) -> None:
    """Internal: the supervisor's exit hook (unmount the rootfs; --rm removes)."""
    from dockyard.errors import NotFound

    with contextlib.suppress(NotFound):
        engine.containers.on_exit(container_id)




@click.command("events")
@click.option("--since", default=None, help="Show events from this time (Unix seconds, "
              "RFC 3339 or a duration ago: 10m).")
@click.option("--until", default=None, help="Stream events until this time.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="type, event, container, image, network, volume, label.")
@click.option("--format", "fmt", default=None, help="A Go template, or json.")
@click.pass_obj
def events_cmd(engine: Engine, since: str | None, until: str | None,
               filters: tuple[str, ...], fmt: str | None) -> None:
    """Show this root's events (what the CLI and the API did), then follow new ones
    until --until passes or Ctrl-C."""
    import time

    from dockyard.engine.events import FILTERS, matches, parse_time
    from dockyard.errors import InvalidArgument

    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or key not in FILTERS:
            raise InvalidArgument(f"invalid filter '{item}'")
        wanted.setdefault(key, []).append(value)
    start = parse_time(since) if since else None
    end = parse_time(until) if until else None
    follow = end is None or end > time.time()
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        for event in engine.events.read(since=start, until=end, follow=follow):
            if matches(event, wanted):
                click.echo(_event_line(event, fmt))


def _event_line(event: dict[str, object], fmt: str | None) -> str:
    """Docker's line: time, type, action, actor, its attributes; or a template."""
    import datetime
    import json

    from dockyard.cli.render import render_inspect

    if fmt == "json":
        return json.dumps(event)
    actor = event.get("Actor") or {}
    assert isinstance(actor, dict)
    if fmt:
        go = {"Type": event.get("Type"), "Action": event.get("Action"),
              "Actor": {"ID": actor.get("ID"), "Attributes": actor.get("Attributes")},
              "Scope": event.get("scope"), "Time": event.get("time"),
              "TimeNano": event.get("timeNano"), "Status": event.get("status", ""),
              "ID": event.get("id", ""), "From": event.get("from", "")}
        return render_inspect([go], fmt)
    nano = int(str(event.get("timeNano") or 0))
    stamp = datetime.datetime.fromtimestamp(nano // 1_000_000_000, datetime.UTC)
    when = stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nano % 1_000_000_000:09d}Z"
    attributes = actor.get("Attributes") or {}
    assert isinstance(attributes, dict)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
    return f"{when} {event.get('Type')} {event.get('Action')} {actor.get('ID')}" + \
        (f" ({shown})" if shown else "")


system_group.add_command(events_cmd)

COMMANDS = [system_group, events_cmd]
