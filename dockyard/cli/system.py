"""System commands: disk usage and the consistency check."""

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


COMMANDS = [system_group]
