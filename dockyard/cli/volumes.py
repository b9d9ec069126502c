"""Volume commands: create, ls, inspect, rm, prune."""

from __future__ import annotations

import click

from dockyard.cli.container_flags import _labels
from dockyard.cli.render import label_method, labels_text, render, render_inspect
from dockyard.engine.engine import Engine


@click.group("volume")
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command("create")
@click.option("-o", "--opt", multiple=True, help="type=tmpfs|none, device=…, o=…")
@click.option("--label", multiple=True)
@click.option("-d", "--driver", default="local")
@click.argument("name", required=False)
@click.pass_obj
def volume_create(engine: Engine, opt: tuple[str, ...], label: tuple[str, ...], driver: str,
                  name: str | None) -> None:
    """Create a volume."""
    from dockyard.errors import NotImplementedFeature

    if driver != "local":
        raise NotImplementedFeature(f"volume driver {driver!r}: only local is supported")
    click.echo(engine.volumes.create(name, options=_labels(opt), labels=_labels(label)).name)


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-f", "--filter", "filters", multiple=True, help="dangling=true|false")
@click.option("--format", "fmt", default=None)
@click.pass_obj
def volume_ls(engine: Engine, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    volumes = engine.volumes.all()
    for item in filters:
        key, _, value = item.partition("=")
        if key == "dangling":
            want = value.lower() in ("true", "1")
            volumes = [v for v in volumes if (not engine.containers.volume_users(v.name)) == want]
    if quiet:
        for volume in volumes:
            click.echo(volume.name)
        return
    rows = [{"Driver": v.driver, "Name": v.name, "Scope": "local",
             "Mountpoint": str(engine.volumes.data_dir(v.name)), "Labels": labels_text(v.labels),
             "Label": label_method(v.labels), "Links": "N/A", "Size": "N/A"} for v in volumes]
    click.echo(render(rows, ["Driver", "Name"], fmt, {"Driver": "DRIVER",
                                                       "Name": "VOLUME NAME"}))


@volume_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None)
@click.pass_obj
def volume_inspect(engine: Engine, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on volumes."""
    docs = [engine.volumes.inspect(engine.volumes.get(name)) for name in names]
    click.echo(render_inspect(docs, fmt))


@volume_group.command("rm")
@click.option("-f", "--force", is_flag=True)
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def volume_rm(engine: Engine, force: bool, names: tuple[str, ...]) -> None:
    """Remove volumes (refused while a container uses one)."""
    from dockyard.cli.containers import _each

    def remove(name: str) -> None:
        engine.containers.unmount_volume(name)
        engine.volumes.remove(name, engine.containers.volume_users(name))

    _each(names, remove)


@volume_group.command("prune")
@click.option("-a", "--all", "all_volumes", is_flag=True, help="Named ones too.")
@click.option("-f", "--force", is_flag=True)
@click.pass_obj
def volume_prune(engine: Engine, all_volumes: bool, force: bool) -> None:
    """Remove unused anonymous volumes (all unused ones with -a)."""
    removed = []
    for volume in engine.volumes.all():
        if (volume.anonymous or all_volumes) and not engine.containers.volume_users(volume.name):
            engine.containers.unmount_volume(volume.name)
            engine.volumes.remove(volume.name, [])
            removed.append(volume.name)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)


COMMANDS = [volume_group]
